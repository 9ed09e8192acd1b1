# sync-server in a container. Build: docker build -t lancesync .
# Run:   docker run -d -p 8000:8000 -v lancesync-data:/data \
#          -e API_ADMIN_TOKEN=$(openssl rand -hex 32) lancesync
# Without a token sync-server listens on 127.0.0.1 only, which a container cannot be reached
# on: set API_ADMIN_TOKEN (and API_USER_TOKENS) to serve on 0.0.0.0.
FROM rust:1.95-bookworm AS build
RUN apt-get update -qq && apt-get install -y -qq protobuf-compiler >/dev/null
WORKDIR /src
COPY . .
RUN cargo build --locked --release -p sync-server -p sync-cli

FROM debian:bookworm-slim
RUN apt-get update -qq && apt-get install -y -qq ca-certificates curl >/dev/null \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home /data lancesync \
    && install -d -o lancesync -g lancesync /data
COPY --from=build /src/target/release/sync-server /src/target/release/sync-cli /usr/local/bin/
USER lancesync
WORKDIR /data
ENV LANCEDB_URI=/data/lancedb \
    SYNC_STATE_DIR=/data/sync_state \
    API_HOST=0.0.0.0 \
    API_PORT=8000 \
    LOG_FORMAT=json
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s CMD curl -fsS http://127.0.0.1:8000/health/live || exit 1
VOLUME ["/data"]
ENTRYPOINT ["sync-server"]
