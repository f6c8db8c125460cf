# idemgate: one static binary for every role (serve, project, relay, migrate,
# healthcheck, ...), on a distroless base that has no shell and runs as the
# unprivileged "nonroot" user (65532). Used by docker-compose.yml and the
# Kubernetes manifests in deploy/kubernetes.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/idemgate ./cmd/idemgate

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/idemgate /usr/local/bin/idemgate
USER 65532:65532
# 8080: serve's API, /healthz, /readyz, /metrics. 9090: project's and
# relay's /healthz, /readyz, /metrics (IDEMGATE_METRICS_ADDR=0.0.0.0:9090).
EXPOSE 8080 9090
ENTRYPOINT ["/usr/local/bin/idemgate"]
CMD ["serve"]
