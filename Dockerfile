# One image for every anomalyd command: the three services (baseline,
# detector, publisher) and the tools (anomalyctl, replay, hbos, demo), all
# static, in /usr/local/bin. A container names its command; the image has
# no entrypoint of its own. It runs as an unprivileged user.
#
#   docker build -t anomalyd .
#   docker run --rm anomalyd detector -h

FROM golang:1.26-bookworm AS build
WORKDIR /src
# Modules first, so that a change of code does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# No cgo: the binaries need no libc, which the runtime image does not have.
ENV CGO_ENABLED=0
RUN go build -trimpath -ldflags='-s -w' -o /out/ ./cmd/...

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/ /usr/local/bin/
USER nonroot:nonroot
