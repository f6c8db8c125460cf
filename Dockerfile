# idemgate for docker-compose.yml: one static binary, every role.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -o /idemgate ./cmd/idemgate

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /idemgate /idemgate
ENTRYPOINT ["/idemgate"]
