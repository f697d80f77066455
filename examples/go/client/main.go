// Streams typed rows and a columnar batch to ingest-bridge and prints the acks.
//
// A Go module: google.golang.org/grpc and google.golang.org/protobuf come from the module proxy at the versions
// go.sum pins; `go generate` writes the stubs from protos/ into v1/ (protoc must be installed). From examples/go:
//
//	go generate && go build -o ingest-client ./client
//
// Usage: ingest-client HOST:PORT ROUTE [ROWS]
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	pb "example.com/ingestbridge/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

func main() {
	target, route := os.Args[1], os.Args[2]
	rows := 1000
	if len(os.Args) > 3 {
		rows, _ = strconv.Atoi(os.Args[3])
	}
	half := rows / 2

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fmt.Fprintln(os.Stderr, "client:", err)
		os.Exit(2)
	}
	defer conn.Close()
	stream, err := pb.NewIngestServiceClient(conn).IngestStream(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "stream:", err)
		os.Exit(2)
	}

	typed := &pb.RowBatch{Columns: []string{"id", "name", "score", "even"}}
	for i := 0; i < half; i++ {
		typed.Rows = append(typed.Rows, &pb.Row{Values: []*pb.Value{
			{Kind: &pb.Value_Int{Int: int64(i)}},
			{Kind: &pb.Value_String_{String_: fmt.Sprintf("go-%d", i)}},
			{Kind: &pb.Value_Double{Double: float64(i) / 4}},
			{Kind: &pb.Value_Bool{Bool: i%2 == 0}},
		}})
	}
	var ids []int64
	var names []string
	var scores []float64
	var evens []bool
	for i := half; i < rows; i++ {
		ids = append(ids, int64(i))
		names = append(names, fmt.Sprintf("go-%d", i))
		scores = append(scores, float64(i)/4)
		evens = append(evens, i%2 == 0)
	}
	columnar := &pb.ColumnBatch{Columns: []*pb.Column{
		{Name: "id", Data: &pb.Column_Ints{Ints: &pb.Int64S{Values: ids}}},
		{Name: "name", Data: &pb.Column_Strings{Strings: &pb.Strings{Values: names}}},
		{Name: "score", Data: &pb.Column_Doubles{Doubles: &pb.Doubles{Values: scores}}},
		{Name: "even", Data: &pb.Column_Bools{Bools: &pb.Bools{Values: evens}}},
	}}
	requests := []*pb.IngestRequest{
		{Route: route, Sequence: 0, Payload: &pb.IngestRequest_Rows{Rows: typed}},
		{Sequence: 1, Payload: &pb.IngestRequest_Columns{Columns: columnar}},
	}
	for _, r := range requests {
		if err := stream.Send(r); err != nil {
			fmt.Fprintln(os.Stderr, "send:", err)
			os.Exit(2)
		}
	}
	stream.CloseSend()

	accepted, failed := 0, 0
	for {
		ack, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "recv:", err)
			os.Exit(2)
		}
		code := ack.GetStatus().GetCode()
		fmt.Printf("ack sequence=%d accepted=%d rejected=%d code=%d\n", ack.Sequence, ack.Accepted, ack.Rejected, code)
		accepted += int(ack.Accepted)
		if code != 0 {
			failed++
		}
	}
	fmt.Printf("done: %d rows accepted\n", accepted)
	if failed != 0 || accepted != rows {
		os.Exit(1)
	}
}
