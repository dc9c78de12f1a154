# Build and run Trove in a container (used by docker-compose.yml).
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin trove

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/trove /usr/local/bin/trove
ENV TROVE_LISTEN=0.0.0.0:8080 TROVE_DATA_DIR=/var/lib/trove
VOLUME /var/lib/trove
EXPOSE 8080
ENTRYPOINT ["trove"]
CMD ["serve"]
