defmodule OptunaBridge.ReadmeTest do
  @moduledoc "The README's quick-start blocks run as they are written (pasted into a process)."
  use ExUnit.Case, async: true

  @readme Path.expand("../../README.md", __DIR__)

  blocks =
    @readme
    |> File.read!()
    |> String.split("<!-- quick-start -->\n```elixir\n")
    |> tl()
    |> Enum.map(fn rest -> rest |> String.split("\n```", parts: 2) |> hd() end)

  for {code, i} <- Enum.with_index(blocks) do
    @code code
    test "quick-start block #{i + 1}" do
      {_, binding} = Code.eval_string(@code, [], file: @readme)
      study = Keyword.fetch!(binding, :study)
      if Process.alive?(study), do: OptunaBridge.Study.stop(study)
    end
  end

  test "there are quick-start blocks" do
    assert unquote(length(blocks)) >= 3
  end
end
