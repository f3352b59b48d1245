"""A coordinator written in Python from proto/worker.proto and proto/sampler.proto alone.

The message classes come from protoc (run by test/python-peer.test.ts into a temporary folder named by
argv[2]); nothing of the TypeScript is read. It says Hello to the worker at argv[1], sets up a run,
executes a batch (init, a scored advance to the end, a fetch), then sends a malformed batch, and prints
what it got as one JSON line for the test to compare with the TypeScript coordinator's answer.
"""
import json
import struct
import sys

sys.path.insert(0, sys.argv[2])

import grpc  # noqa: E402
import sampler_pb2  # noqa: E402
import worker_pb2 as w  # noqa: E402

SERVICE = "/evosearch.worker.v1.Worker/"
CHUNK = 1 << 20


def unary(channel, method, request, reply_type):
    call = channel.unary_unary(SERVICE + method, request_serializer=lambda m: m.SerializeToString(), response_deserializer=reply_type.FromString)
    return call(request, timeout=60)


def execute(channel, run_id, commands, tensors=()):
    """One Execute stream: the header with the batch, the tensors in chunks, the end; the reply reassembled."""
    header = w.FrameHeader(run_id=run_id, tensor_lengths=[len(t) for t in tensors], commands=w.CommandBatch(commands=commands))

    def frames():
        yield w.Frame(header=header)
        for index, tensor in enumerate(tensors):
            data = struct.pack(f"<{len(tensor)}f", *tensor)
            for offset in range(0, len(data), CHUNK):
                yield w.Frame(chunk=w.TensorChunk(tensor=index, offset=offset, data=data[offset:offset + CHUNK]))
        yield w.Frame(end=w.FrameEnd())

    call = channel.stream_stream(SERVICE + "Execute", request_serializer=lambda m: m.SerializeToString(), response_deserializer=w.Frame.FromString)
    reply_header = None
    received = []
    for frame in call(frames(), timeout=120):
        member = frame.WhichOneof("body")
        if member == "header":
            reply_header = frame.header
            received = [bytearray(4 * n) for n in reply_header.tensor_lengths]
        elif member == "chunk":
            received[frame.chunk.tensor][frame.chunk.offset:frame.chunk.offset + len(frame.chunk.data)] = frame.chunk.data
        elif member == "end":
            break
    tensors_back = [struct.unpack(f"<{len(b) // 4}f", bytes(b)) for b in received]
    if reply_header.WhichOneof("body") == "chunked_body_bytes":
        results = w.ResultBatch.FromString(bytes(received[-1][: reply_header.chunked_body_bytes])).results
        tensors_back = tensors_back[:-1]
    else:
        results = reply_header.results.results
    return results, tensors_back


def main():
    channel = grpc.insecure_channel(sys.argv[1])
    hello = unary(channel, "Hello", w.HelloRequest(protocol_version=int(sys.argv[3]), expected_model_build=""), w.HelloReply)
    schedule = sampler_pb2.VpSchedule(steps=10, num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", prediction_type="epsilon", timestep_spacing="leading", steps_offset=1, clip_sample=False)
    setup = w.RunSetup(model=hello.model, sampler=sampler_pb2.SamplerConfig(ddim=sampler_pb2.DdimSampler(schedule=schedule, eta=1.0, set_alpha_to_one=False)), seed="5", batch_size=16)
    unary(channel, "Setup", w.SetupRequest(run_id="python-peer", setup=setup), w.SetupReply)
    ids = [1, 2, 3]
    commands = [
        w.Command(init=w.InitCommand(ids=ids)),
        w.Command(advance=w.AdvanceCommand(ids=ids, to=10, purpose=w.NOISE_PURPOSE_ADVANCE, score=True)),
        w.Command(fetch=w.FetchCommand(ids=[2])),
    ]
    results, tensors = execute(channel, "python-peer", commands)
    fetched = results[2].samples[0]
    # A malformed batch: an advance with no noise purpose (the enum's zero) must be refused, naming it.
    try:
        execute(channel, "python-peer", [w.Command(advance=w.AdvanceCommand(ids=ids, to=10))])
        refusal = None
    except grpc.RpcError as error:
        refusal = {"code": error.code().name, "details": error.details()}
    health = unary(channel, "Health", w.HealthRequest(), w.HealthReply)
    print(json.dumps({
        "protocol": hello.protocol_version,
        "kinds": [w.CommandKind.Name(r.kind) for r in results],
        "rewards": [[s.id, s.reward] for s in results[1].scores],
        "nfe": results[1].counters.nfe,
        "sample": {"id": fetched.id, "shape": list(fetched.shape), "data": list(tensors[fetched.data.index])},
        "refusal": refusal,
        "health_batches": health.batches,
    }))


if __name__ == "__main__":
    main()
