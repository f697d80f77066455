// Streams typed rows and a columnar batch to ingest-bridge and prints the acks.
//
// A Go module: google.golang.org/grpc and google.golang.org/protobuf come from the module proxy at the versions
// go.sum pins; `go generate` writes the stubs from protos/ into v1/ (protoc must be installed). From examples/go:
//
//	go generate && go build -o ingest-client ./client
//
// Usage: ingest-client HOST:PORT ROUTE [ROWS]
//
// The caller contract (README): a batch is done once its ack says so. When the stream ends UNAVAILABLE (a
// bridge draining, restarted or gone: a lost connection), or an ack says UNAVAILABLE, every batch not
// acknowledged is sent again on a new stream after a bounded, doubling pause. dns:///NAME:PORT names several
// bridges (round_robin).
package main

import (
	"context"
	"fmt"
	"io"
	"math/rand"
	"os"
	"sort"
	"strconv"
	"time"

	pb "example.com/ingestbridge/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
)

const (
	maxRounds = 20
	maxDelay  = 5 * time.Second
)

func main() {
	target, route := os.Args[1], os.Args[2]
	rows := 1000
	if len(os.Args) > 3 {
		rows, _ = strconv.Atoi(os.Args[3])
	}
	half := rows / 2

	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig": [{"round_robin": {}}]}`),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 20 * time.Second, Timeout: 10 * time.Second}))
	if err != nil {
		fmt.Fprintln(os.Stderr, "client:", err)
		os.Exit(2)
	}
	defer conn.Close()
	client := pb.NewIngestServiceClient(conn)

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
	// Not yet acknowledged, by sequence. Each names its route: a resend may open a new stream.
	pending := map[uint64]*pb.IngestRequest{
		0: {Route: route, Sequence: 0, Payload: &pb.IngestRequest_Rows{Rows: typed}},
		1: {Route: route, Sequence: 1, Payload: &pb.IngestRequest_Columns{Columns: columnar}},
	}
	accepted, failed, resent := 0, 0, 0
	for round := 0; len(pending) > 0; round++ {
		if round == maxRounds {
			fmt.Fprintf(os.Stderr, "giving up: %d batches not acknowledged after %d attempts\n", len(pending), round)
			os.Exit(2)
		}
		if round > 0 {
			resent += len(pending)
			// Full jitter on a doubling pause, capped.
			time.Sleep(time.Duration(rand.Int63n(int64(min(200*time.Millisecond<<round, maxDelay)))))
		}
		a, f, err := streamOnce(client, pending)
		accepted, failed = accepted+a, failed+f
		if err != nil {
			if !resendable(err) {
				fmt.Fprintln(os.Stderr, "stream failed:", err)
				os.Exit(2)
			}
			fmt.Printf("stream failed: UNAVAILABLE %s; resending %d batches not acknowledged\n",
				status.Convert(err).Message(), len(pending))
		}
	}
	fmt.Printf("done: %d rows accepted, %d batches resent\n", accepted, resent)
	if failed != 0 || accepted != rows {
		os.Exit(1)
	}
}

// streamOnce sends every pending batch on one stream and removes the ones acknowledged.
func streamOnce(client pb.IngestServiceClient, pending map[uint64]*pb.IngestRequest) (accepted, failed int, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stream, err := client.IngestStream(ctx)
	if err != nil {
		return 0, 0, err
	}
	seqs := make([]uint64, 0, len(pending))
	for s := range pending {
		seqs = append(seqs, s)
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	for _, s := range seqs {
		if err := stream.Send(pending[s]); err != nil {
			break // the stream ended: Recv says why
		}
	}
	stream.CloseSend()
	for {
		ack, err := stream.Recv()
		if err == io.EOF {
			return accepted, failed, nil
		}
		if err != nil {
			return accepted, failed, err
		}
		code := ack.GetStatus().GetCode()
		fmt.Printf("ack sequence=%d accepted=%d rejected=%d code=%d\n", ack.Sequence, ack.Accepted, ack.Rejected, code)
		if codes.Code(code) == codes.Unavailable {
			continue // stays pending: sent again in the next round
		}
		if _, ok := pending[ack.Sequence]; !ok {
			continue // not one of ours, or already counted
		}
		delete(pending, ack.Sequence)
		accepted += int(ack.Accepted)
		if code != 0 {
			failed++
		}
	}
}

// resendable: UNAVAILABLE, or a connection cut under the call (INTERNAL or UNKNOWN without the bridge's details).
func resendable(err error) bool {
	s := status.Convert(err)
	switch s.Code() {
	case codes.Unavailable:
		return true
	case codes.Internal, codes.Unknown:
		return len(s.Proto().GetDetails()) == 0
	}
	return false
}
