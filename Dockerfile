# relabel as a container image: a static binary on distroless, as user 65532.
#   make image                     # passes version, commit and date
#   docker build -t relabel:latest .
FROM golang:1.26 AS build
WORKDIR /src
# Modules first, so that a source change does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=unknown
ARG DATE=unknown
RUN CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT} -X main.date=${DATE}" \
      -o /out/relabel .

# No shell, no package manager: only the binary and CA certificates.
FROM gcr.io/distroless/static:nonroot
COPY --from=build /out/relabel /relabel
USER 65532:65532
ENTRYPOINT ["/relabel"]
