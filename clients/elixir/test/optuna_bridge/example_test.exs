defmodule OptunaBridge.ExampleTest do
  @moduledoc """
  examples/tune_model.exs and examples/tune_model.livemd hold the same code (the notebook adds
  only its Livebook setup cell), and that code runs: it tunes the plain-Elixir ridge regression,
  prunes some trials through report/3 and draws the history.
  """
  use ExUnit.Case, async: true

  import ExUnit.CaptureIO

  @examples Path.expand("../../examples", __DIR__)
  @livemd Path.join(@examples, "tune_model.livemd")
  @exs Path.join(@examples, "tune_model.exs")

  defp notebook_blocks do
    @livemd
    |> File.read!()
    |> String.split("```elixir\n")
    |> tl()
    |> Enum.map(&(&1 |> String.split("\n```", parts: 2) |> hd()))
    |> Enum.reject(&String.contains?(&1, "Mix.install"))
  end

  test "the script is the notebook's cells, in order" do
    blocks = notebook_blocks()
    assert length(blocks) == 5
    script = File.read!(@exs)
    [_header, body] = String.split(script, "\n\n", parts: 2)
    assert body == Enum.join(blocks, "\n\n") <> "\n"
  end

  @tag timeout: 300_000
  test "the notebook's cells run: a score per epoch, pruning, the history drawn" do
    [data, model, setup, run, draw] = notebook_blocks()
    unique = "ridge-#{System.unique_integer([:positive])}"
    setup = String.replace(setup, ~s(name: "ridge"), ~s(name: "#{unique}"))

    output =
      capture_io(fn ->
        binding =
          Enum.reduce([data, model, setup, run], [], fn code, binding ->
            {_, binding} = Code.eval_string(code, binding, file: @livemd)
            binding
          end)

        study = binding[:study]
        {:ok, trials} = OptunaBridge.Study.trials(study)
        states = Enum.frequencies_by(trials, & &1.state)
        assert states[:pruned] >= 1, "no trial pruned: #{inspect(states)}"
        assert states[:complete] >= 5
        assert Enum.all?(trials, &(&1.intermediate_values != %{} or &1.state == :fail))
        Code.eval_string(draw, binding, file: @livemd)
      end)

    assert output =~ "best validation MSE"
    path = Path.join(System.tmp_dir!(), "tune_model_history.png")
    assert <<137, "PNG", _::binary>> = File.read!(path)
  end
end
