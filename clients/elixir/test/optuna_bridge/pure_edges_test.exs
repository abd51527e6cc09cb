defmodule OptunaBridge.PureEdgesTest do
  @moduledoc "Edges of the pure modules (no process): RPC, Outbox, Error, JSON, CheckpointPolicy."
  use ExUnit.Case, async: true

  alias OptunaBridge.{CheckpointPolicy, Error, JSON, Outbox, RPC}

  test "RPC builds frames and sorts what it cannot classify" do
    assert RPC.request(1, "ping", %{}) == %{jsonrpc: "2.0", id: 1, method: "ping", params: %{}}
    assert RPC.notification("tell", %{}) == %{jsonrpc: "2.0", method: "tell", params: %{}}
    assert {:invalid, [1]} = RPC.classify([1])
  end

  test "Outbox: unknown replies and errors leave it unchanged; requests have a size" do
    box = Outbox.new() |> Outbox.push({:request, 1, 7, 10})
    assert {[], ^box} = Outbox.reply(box, 99)
    assert {nil, ^box} = Outbox.notification_error(box, "tell")
    assert {{:request, 1, 7, 10}, _} = Outbox.null_error(box, :frame_too_large, 5)
    assert {nil, _} = Outbox.null_error(Outbox.new(), :parse_error, nil)
  end

  test "Error kinds are a closed set; policies can be disabled" do
    assert Error.kind_of(42) == :unknown
    policy = CheckpointPolicy.disable(CheckpointPolicy.new([]))
    assert policy.every == 0 and policy.interval == 0
  end

  test "JSON: escapes and rejections" do
    assert JSON.encode!("\r\t\b\f") == ~S("\r\t\b\f")
    assert {:error, %JSON.DecodeError{}} = JSON.decode(~s({"a":1 "b":2}))
    assert {:error, %JSON.DecodeError{}} = JSON.decode(~s("abc\\))
    assert {:error, %JSON.DecodeError{}} = JSON.decode("-a")
    assert JSON.builtin?() == Version.match?(System.version(), ">= 1.18.0")
  end

  test "a pool needs an atom name and a positive size" do
    assert_raise ArgumentError, fn -> OptunaBridge.Pool.start_link(name: "pool") end
    assert_raise ArgumentError, fn -> OptunaBridge.Pool.start_link(name: :p, size: 0) end
    assert_raise ArgumentError, fn -> OptunaBridge.Pool.start_link(name: :p, bogus: 1) end
  end

  test "deadlines: :infinity stays :infinity" do
    assert OptunaBridge.Worker.deadline(:infinity) == :infinity
    assert OptunaBridge.Worker.remaining(:infinity) == :infinity
    assert OptunaBridge.Worker.remaining(OptunaBridge.Worker.deadline(0)) == 0
  end

  test "a shared worker takes only worker options" do
    assert_raise ArgumentError, fn -> OptunaBridge.SharedWorker.start_link(timeout: 1) end
  end
end
