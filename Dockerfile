# syntax=docker/dockerfile:1
#
# motehub: the hub and the mote simulator as static binaries in a minimal
# image that runs as a non-root user (uid 65532), with no shell.
#
#   docker build -t motehub .
#   docker run --rm -p 127.0.0.1:8080:8080 -p 127.0.0.1:1883:1883 motehub --allow-anonymous
#   docker run --rm motehub --help
#   docker run --rm --entrypoint /usr/local/bin/motesim motehub --broker tcp://broker:1883
#
# The default command listens on every interface of the container, so, like
# Mosquitto 2, the hub refuses to start until it is told who may connect:
# mount a users file and add `--users /etc/motehub/users.toml`, or add
# `--allow-anonymous`. See docker-compose.yml for replicas in front of an
# MQTT cluster (docs/scaling.md).
#
# Health: the image has no shell or curl, so it declares no HEALTHCHECK.
# Probe the hub over HTTP from outside instead: GET /healthz (the process
# serves) and GET /readyz (every listener up and, with --upstream, the
# upstream broker connected);
# a Kubernetes httpGet probe, or a load balancer's active health check as
# in docker-compose.yml.

FROM --platform=$BUILDPLATFORM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
# mochi-mqtt, patched (go.mod replaces it with this directory): its go.mod first.
COPY third_party/mochi-mqtt-server/go.mod third_party/mochi-mqtt-server/go.sum third_party/mochi-mqtt-server/
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG TARGETOS TARGETARCH
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags="-s -w" -o /out/ ./cmd/hub ./cmd/motesim

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/hub /out/motesim /usr/local/bin/
# The nonroot user's home, writable by it: the hub's working directory.
WORKDIR /home/nonroot
USER nonroot:nonroot
# HTTP (page, /ws, /events, /api, /healthz, /readyz, /metrics) and MQTT.
EXPOSE 8080 1883
ENTRYPOINT ["/usr/local/bin/hub"]
CMD ["--http", "0.0.0.0:8080", "--mqtt", "0.0.0.0:1883"]
