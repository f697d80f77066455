// Package ingestbridge is the Go side of the bridge's wire contract: `go generate` writes the protobuf and
// gRPC stubs of ../../protos/ingestbridge/v1/ingest.proto into v1/ (package example.com/ingestbridge/v1,
// the proto's go_package) with protoc and the plugins pinned by the tool lines of go.mod.
package ingestbridge

// The plugins are built from the module cache at the versions go.sum pins, so every machine generates the same code.
//go:generate go build -o bin/ google.golang.org/protobuf/cmd/protoc-gen-go google.golang.org/grpc/cmd/protoc-gen-go-grpc
//go:generate protoc -I../../protos --plugin=protoc-gen-go=bin/protoc-gen-go --plugin=protoc-gen-go-grpc=bin/protoc-gen-go-grpc --go_out=. --go_opt=module=example.com/ingestbridge --go-grpc_out=. --go-grpc_opt=module=example.com/ingestbridge ingestbridge/v1/ingest.proto
