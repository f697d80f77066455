package io.ingestbridge.example;

import com.google.protobuf.Any;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.rpc.Code;
import com.google.rpc.RetryInfo;
import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.protobuf.StatusProto;
import io.grpc.stub.StreamObserver;
import io.ingestbridge.v1.BatchAck;
import io.ingestbridge.v1.Bools;
import io.ingestbridge.v1.Column;
import io.ingestbridge.v1.ColumnBatch;
import io.ingestbridge.v1.Doubles;
import io.ingestbridge.v1.IngestRequest;
import io.ingestbridge.v1.IngestServiceGrpc;
import io.ingestbridge.v1.Int64s;
import io.ingestbridge.v1.Row;
import io.ingestbridge.v1.RowBatch;
import io.ingestbridge.v1.Strings;
import io.ingestbridge.v1.Value;
import java.util.ArrayList;
import java.util.List;
import java.util.SortedMap;
import java.util.TreeMap;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

/**
 * Streams typed rows (a RowBatch) and a columnar batch (a ColumnBatch) to ingest-bridge over IngestStream and
 * prints each ack. A batch is done once its ack says so; after UNAVAILABLE every batch not acknowledged is sent
 * again, whether the stream itself failed (the bridge down or restarting, its call limit reached) or an ack
 * carried it (the target stayed down longer than the bridge retries). Other failures are final.
 *
 * <p>Usage: {@code java -jar target/ingest-example.jar HOST:PORT ROUTE [ROWS]}
 */
public final class Stream {
  private static final int MAX_ROUNDS = 10;
  private static final long MAX_DELAY_MS = 5_000;
  private static final Object END = new Object();

  private Stream() {}

  public static void main(String[] args) throws InterruptedException {
    if (args.length < 2) {
      System.err.println("usage: ingest-example HOST:PORT ROUTE [ROWS]");
      System.exit(2);
    }
    String target = args[0];
    String route = args[1];
    int rows = args.length > 2 ? Integer.parseInt(args[2]) : 1000;
    int half = rows / 2;

    // Not yet acknowledged, by sequence. Each names its route: a resend may open a new stream.
    SortedMap<Long, IngestRequest> pending = new TreeMap<>();
    pending.put(0L, IngestRequest.newBuilder().setRoute(route).setSequence(0).setRows(typedRows(0, half)).build());
    pending.put(1L, IngestRequest.newBuilder().setRoute(route).setSequence(1).setColumns(columns(half, rows)).build());

    ManagedChannel channel = Grpc.newChannelBuilder(target, InsecureChannelCredentials.create()).build();
    IngestServiceGrpc.IngestServiceStub stub = IngestServiceGrpc.newStub(channel);
    long accepted = 0;
    int failed = 0;
    int resent = 0;
    long delayMs = 0;
    try {
      for (int round = 0; !pending.isEmpty(); round++) {
        if (round == MAX_ROUNDS) {
          System.err.printf("giving up: %d batches not acknowledged after %d attempts%n", pending.size(), round);
          System.exit(2);
        }
        if (round > 0) {
          resent += pending.size();
          // The bridge's RetryInfo when it gave one, else a doubling pause.
          Thread.sleep(delayMs > 0 ? delayMs : Math.min(200L << round, MAX_DELAY_MS));
        }
        delayMs = 0;
        BlockingQueue<Object> events = new LinkedBlockingQueue<>();
        StreamObserver<IngestRequest> requests = stub.withDeadlineAfter(30, TimeUnit.SECONDS)
            .ingestStream(new StreamObserver<>() {
              @Override public void onNext(BatchAck ack) { events.add(ack); }
              @Override public void onError(Throwable t) { events.add(t); }
              @Override public void onCompleted() { events.add(END); }
            });
        for (IngestRequest r : new ArrayList<>(pending.values())) {
          requests.onNext(r);
        }
        requests.onCompleted();

        for (Object event = events.take(); event != END; event = events.take()) {
          if (event instanceof Throwable t) {
            Status status = Status.fromThrowable(t);
            if (status.getCode() != Status.Code.UNAVAILABLE) {
              System.err.printf("stream failed: %s %s%n", status.getCode(), status.getDescription());
              System.exit(2);
            }
            com.google.rpc.Status details = StatusProto.fromThrowable(t);
            delayMs = details == null ? 0 : retryDelayMs(details);
            System.out.printf("stream failed: UNAVAILABLE %s; resending %d batches not acknowledged%n",
                status.getDescription(), pending.size());
            break;
          }
          BatchAck ack = (BatchAck) event;
          int code = ack.getStatus().getCode();
          System.out.printf("ack sequence=%d accepted=%d rejected=%d code=%d%n",
              ack.getSequence(), ack.getAccepted(), ack.getRejected(), code);
          if (code == Code.UNAVAILABLE_VALUE) {
            delayMs = Math.max(delayMs, retryDelayMs(ack.getStatus()));
            continue; // stays pending: sent again in the next round
          }
          if (pending.remove(ack.getSequence()) == null) {
            continue; // not one of ours, or already counted
          }
          accepted += ack.getAccepted();
          if (code != Code.OK_VALUE) {
            failed++;
          }
        }
      }
    } finally {
      channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    }
    System.out.printf("done: %d rows accepted, %d batches resent%n", accepted, resent);
    System.exit(failed == 0 && accepted == rows ? 0 : 1);
  }

  /** Rows start..start+n-1 as typed values, the column names sent once. */
  static RowBatch typedRows(int start, int n) {
    RowBatch.Builder b = RowBatch.newBuilder().addColumns("id").addColumns("name").addColumns("score")
        .addColumns("even");
    for (int i = start; i < start + n; i++) {
      b.addRows(Row.newBuilder()
          .addValues(Value.newBuilder().setInt(i))
          .addValues(Value.newBuilder().setString("java-" + i))
          .addValues(Value.newBuilder().setDouble(i / 4.0))
          .addValues(Value.newBuilder().setBool(i % 2 == 0)));
    }
    return b.build();
  }

  /** Rows start..end-1 as one packed array per column. */
  static ColumnBatch columns(int start, int end) {
    Int64s.Builder ids = Int64s.newBuilder();
    Strings.Builder names = Strings.newBuilder();
    Doubles.Builder scores = Doubles.newBuilder();
    Bools.Builder evens = Bools.newBuilder();
    for (int i = start; i < end; i++) {
      ids.addValues(i);
      names.addValues("java-" + i);
      scores.addValues(i / 4.0);
      evens.addValues(i % 2 == 0);
    }
    List<Column> columns = List.of(
        Column.newBuilder().setName("id").setInts(ids).build(),
        Column.newBuilder().setName("name").setStrings(names).build(),
        Column.newBuilder().setName("score").setDoubles(scores).build(),
        Column.newBuilder().setName("even").setBools(evens).build());
    return ColumnBatch.newBuilder().addAllColumns(columns).build();
  }

  /** The RetryInfo delay in a status's details, capped; 0 without one. */
  static long retryDelayMs(com.google.rpc.Status status) {
    for (Any detail : status.getDetailsList()) {
      if (detail.is(RetryInfo.class)) {
        try {
          com.google.protobuf.Duration d = detail.unpack(RetryInfo.class).getRetryDelay();
          return Math.min(d.getSeconds() * 1000 + d.getNanos() / 1_000_000, MAX_DELAY_MS);
        } catch (InvalidProtocolBufferException e) {
          return 0;
        }
      }
    }
    return 0;
  }
}
