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
requests = [V1::IngestRequest.new(route: route, sequence: 0, rows: typed),
            V1::IngestRequest.new(sequence: 1, columns: columnar)]

stub = V1::IngestService::Stub.new(target, :this_channel_is_insecure)
accepted = 0
failed = 0
stub.ingest_stream(requests.each).each do |ack|
  code = ack.status ? ack.status.code : 0
  puts "ack sequence=#{ack.sequence} accepted=#{ack.accepted} rejected=#{ack.rejected} code=#{code}"
  accepted += ack.accepted
  failed += 1 if code != 0
end
puts "done: #{accepted} rows accepted"
exit(failed.zero? && accepted == rows ? 0 : 1)
