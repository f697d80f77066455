# Streams typed rows and a columnar batch to ingest-bridge and prints the acks.
#
# Stubs (Debian: apt-get install ruby-grpc ruby-grpc-tools):
#   grpc_tools_ruby_protoc -Iprotos --ruby_out=OUT --grpc_out=OUT ingestbridge/v1/ingest.proto google/rpc/status.proto
# Usage: ruby -I OUT examples/ruby/stream.rb HOST:PORT ROUTE [ROWS]
require 'grpc'
require 'ingestbridge/v1/ingest_services_pb'

V1 = Ingestbridge::V1
target, route, rows = ARGV[0], ARGV[1], (ARGV[2] || '1000').to_i
half = rows / 2

typed = V1::RowBatch.new(columns: %w[id name score even])
(0...half).each do |i|
  typed.rows << V1::Row.new(values: [V1::Value.new(int: i), V1::Value.new(string: "ruby-#{i}"),
                                     V1::Value.new(double: i / 4.0), V1::Value.new(bool: i.even?)])
end
ids = (half...rows).to_a
columnar = V1::ColumnBatch.new(columns: [
  V1::Column.new(name: 'id', ints: V1::Int64s.new(values: ids)),
  V1::Column.new(name: 'name', strings: V1::Strings.new(values: ids.map { |i| "ruby-#{i}" })),
  V1::Column.new(name: 'score', doubles: V1::Doubles.new(values: ids.map { |i| i / 4.0 })),
  V1::Column.new(name: 'even', bools: V1::Bools.new(values: ids.map(&:even?)))
])
# Not yet acknowledged, by sequence. Each names its route: a resend may open a new stream.
pending = { 0 => V1::IngestRequest.new(route: route, sequence: 0, rows: typed),
            1 => V1::IngestRequest.new(route: route, sequence: 1, columns: columnar) }

# The caller contract (README): a batch is done once its ack says so. When the stream ends UNAVAILABLE (a
# bridge draining, restarted or gone: a lost connection), or an ack says UNAVAILABLE, every batch not
# acknowledged is sent again on a new stream after a bounded, doubling pause. dns:///NAME:PORT names
# several bridges (round_robin).
MAX_ROUNDS = 20
MAX_DELAY = 5.0
channel_args = { 'grpc.service_config' => '{"loadBalancingConfig": [{"round_robin": {}}]}',
                 'grpc.keepalive_time_ms' => 20_000, 'grpc.keepalive_timeout_ms' => 10_000 }
stub = V1::IngestService::Stub.new(target, :this_channel_is_insecure, channel_args: channel_args)
accepted = 0
failed = 0
resent = 0
MAX_ROUNDS.times do |round|
  break if pending.empty?

  if round.positive?
    resent += pending.size
    sleep(rand * [0.2 * 2**round, MAX_DELAY].min) # full jitter on a doubling pause, capped
  end
  begin
    stub.ingest_stream(pending.values.each).each do |ack|
      code = ack.status ? ack.status.code : 0
      puts "ack sequence=#{ack.sequence} accepted=#{ack.accepted} rejected=#{ack.rejected} code=#{code}"
      next if code == GRPC::Core::StatusCodes::UNAVAILABLE # stays pending: sent again in the next round
      next if pending.delete(ack.sequence).nil? # not one of ours, or already counted

      accepted += ack.accepted
      failed += 1 if code != 0
    end
  rescue GRPC::Unavailable, GRPC::Internal, GRPC::Unknown => e
    # A connection cut under the call shows as INTERNAL or UNKNOWN without the bridge's status details.
    raise if !e.is_a?(GRPC::Unavailable) && e.metadata.key?('grpc-status-details-bin')

    puts "stream failed: UNAVAILABLE #{e.details}; resending #{pending.size} batches not acknowledged"
  end
  $stdout.flush
end
unless pending.empty?
  warn "giving up: #{pending.size} batches not acknowledged after #{MAX_ROUNDS} attempts"
  exit 2
end
puts "done: #{accepted} rows accepted, #{resent} batches resent"
exit(failed.zero? && accepted == rows ? 0 : 1)
