defmodule OptunaBridge.WarmStart do
  @moduledoc """
  Warm starts (the worker's `copy_trials`): a study learns from the trials of another study in
  the same storage. Trials whose params fall outside this study's search space, or whose values
  do not fit its directions, are skipped and counted. For a study in another storage, `import/3`
  its snapshot under another name first, then copy from it.
  """

  alias OptunaBridge.{Error, Study, Wire}

  @states ["complete", "pruned", "fail"]

  @doc """
  Copies trials of the study named `from` into `study`: `{:ok, %{"copied" => n, "skipped" => m,
  "numbers" => [...]}}`. Options: `states:` (default `[:complete]`; `:complete`, `:pruned`,
  `:fail`), `limit:` (at most this many, in number order), `params_only:` (enqueue their params
  to be evaluated anew instead of copying their results), `:timeout`.
  """
  @spec copy_trials(Study.study(), String.t(), keyword()) :: {:ok, map()} | {:error, Error.t()}
  def copy_trials(study, from, opts \\ []) do
    unless is_binary(from) and from != "",
      do: raise(ArgumentError, "from must be a study name, got: #{inspect(from)}")

    opts = Wire.validate_options!(opts, [:states, :limit, :params_only, :timeout])

    params =
      Enum.reduce(opts, %{"from" => from}, fn
        {:states, states}, acc -> Map.put(acc, "states", states!(states))
        {:limit, n}, acc when is_integer(n) and n >= 1 -> Map.put(acc, "limit", n)
        {:params_only, flag}, acc when is_boolean(flag) -> Map.put(acc, "params_only", flag)
        {:timeout, _}, acc -> acc
        {key, v}, _acc -> Wire.bad_option!(key, v)
      end)

    case Study.info(study) do
      %{study: to} ->
        Study.request(
          study,
          "copy_trials",
          Map.put(params, "to", to),
          Keyword.take(opts, [:timeout])
        )

      {:error, _} = error ->
        error
    end
  end

  defp states!(states) when is_list(states) and states != [] do
    Enum.map(states, fn state ->
      name = if is_atom(state), do: Atom.to_string(state), else: state
      if name in @states, do: name, else: Wire.bad_option!(:states, states)
    end)
  end

  defp states!(other), do: Wire.bad_option!(:states, other)
end
