# syntax=docker/dockerfile:1
# Multi-stage build: a static shipbot binary (pure-Go SQLite, no cgo) on a
# small Debian base that has the tools the local/SSH drivers run (git, ssh
# client, tar) and nothing else. Runs as a non-root user; state lives in /data.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/bot ./cmd/bot

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates git openssh-client tar gzip \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin shipbot \
 && mkdir -p /data /etc/shipbot && chown shipbot:shipbot /data
COPY --from=build /out/bot /usr/local/bin/bot
USER shipbot
WORKDIR /data
VOLUME ["/data"]
# Mount your config at /etc/shipbot/shipbot.yaml with bot.data_dir: /data.
ENTRYPOINT ["/usr/local/bin/bot"]
CMD ["run", "--config", "/etc/shipbot/shipbot.yaml"]
