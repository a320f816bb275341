# Multi-stage: build with the Rust toolchain, run from a small image as a non-root user.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY proto proto
COPY src src
COPY benches benches
COPY examples examples
COPY tests tests
RUN cargo build --release --locked --bin baton --bin baton-minter

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --no-create-home baton \
    && mkdir -p /var/lib/baton && chown baton /var/lib/baton
COPY --from=build /src/target/release/baton /src/target/release/baton-minter /usr/local/bin/
COPY policies /etc/baton/policies
USER baton
ENV BATON_LISTEN=0.0.0.0:50051 \
    BATON_HTTP_LISTEN=0.0.0.0:8080 \
    BATON_BUNDLE=/etc/baton/policies \
    BATON_STORE_DIR=/var/lib/baton \
    BATON_LOG_FORMAT=json \
    BATON_AUDIT_FILE=/var/lib/baton/audit.jsonl \
    BATON_AUDIT_SPOOL=/var/lib/baton/audit.spool.jsonl
EXPOSE 50051 8080
ENTRYPOINT ["baton"]
CMD ["serve"]
