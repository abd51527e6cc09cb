defmodule OptunaBridge.WireTest do
  use ExUnit.Case, async: true
  doctest OptunaBridge.Wire
  doctest OptunaBridge.Error

  alias OptunaBridge.{Error, RPC, Wire}

  test "trials get atom keys for known fields only, states as atoms, steps as integers" do
    wire = %{
      "number" => 3,
      "state" => "pruned",
      "params" => %{"lr" => 0.1},
      "values" => [0.5],
      "user_attrs" => %{},
      "intermediate_values" => %{"0" => 1.0, "10" => 0.5},
      "new_field" => 1
    }

    assert %{number: 3, state: :pruned, intermediate_values: %{0 => 1.0, 10 => 0.5}} =
             trial = Wire.trial(wire)

    assert trial["new_field"] == 1
  end

  test "unknown error kinds are :unknown, never new atoms" do
    error = Error.from_wire(%{"code" => 1, "message" => "m", "data" => %{"kind" => "brand_new"}})
    assert error.kind == :unknown
    assert error.data["kind"] == "brand_new"
  end

  test "an error reply with a null id is unattributed; error notifications carry the method" do
    assert {:unattributed_error, %Error{kind: :frame_too_large}} =
             RPC.classify(%{
               "id" => nil,
               "error" => %{"code" => -32006, "data" => %{"kind" => "frame_too_large"}}
             })

    assert {:notification, "error", %Error{method: "tell", kind: :trial_not_found}} =
             RPC.classify(%{
               "method" => "error",
               "params" => %{
                 "method" => "tell",
                 "error" => %{"data" => %{"kind" => "trial_not_found"}}
               }
             })
  end

  test "tell params: number, list or nil; every option reachable, unknown ones refused" do
    assert %{"value" => 1.0} = Wire.tell_params(0, 1.0, [])
    assert %{"values" => [1, 2]} = Wire.tell_params(0, [1, 2], [])
    p = Wire.tell_params(0, nil, state: :pruned, constraints: [0.5], skip_if_finished: true)

    assert p == %{
             "number" => 0,
             "state" => "pruned",
             "constraints" => [0.5],
             "skip_if_finished" => true
           }

    assert_raise ArgumentError, fn -> Wire.tell_params(0, nil, state: "pruned", other: 1) end
    assert_raise ArgumentError, fn -> Wire.tell_params(0, "0.5", []) end
    assert_raise ArgumentError, fn -> Wire.tell_params(0, :nan, []) end
    assert_raise ArgumentError, fn -> Wire.tell_params(-1, 1.0, []) end
    assert_raise ArgumentError, fn -> Wire.tell_params(0, 1.0, state: "done") end
  end
end
