# The sluice host with the reference plugins, for docker-compose.yml. Local development and the
# tests do not need it (scripts/run, scripts/test).
FROM rust:1.95-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends cmake && rm -rf /var/lib/apt/lists/*
RUN rustup target add wasm32-wasip2
WORKDIR /src
COPY . .
RUN cd plugins && cargo build --release --target wasm32-wasip2 \
 && cd .. && cargo build --release -p sluice \
 && mkdir -p /out/plugins \
 && cp target/release/sluice /out/ \
 && for p in bank_account accounts_projection post posts_projection; do \
      cp plugins/target/wasm32-wasip2/release/$p.wasm /out/plugins/; done

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/sluice /usr/local/bin/sluice
COPY --from=build /out/plugins /var/lib/sluice/plugins
ENV SLUICE_DATA_DIR=/var/lib/sluice/data SLUICE_PLUGINS=/var/lib/sluice/plugins SLUICE_LISTEN=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["sluice", "serve"]
