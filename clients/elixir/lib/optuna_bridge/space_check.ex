defmodule OptunaBridge.SpaceCheck do
  @moduledoc """
  The search-space checks that need no worker, made in the caller of `OptunaBridge.Study.start/3`
  and `start_link/3`, so a bad space is `{:error, %OptunaBridge.Error{kind: :invalid_params}}`
  from the start call itself instead of a study process that stops later (and, when linked,
  takes its caller, an iex shell or a Livebook cell, down with it). Pure.

  The rules are the worker's (`bridge_worker/studies/space.py`): `type` is `"float"`, `"int"` or
  `"categorical"`; `low <= high`, finite; `log` needs `low > 0` and no `step`; a float `step` is
  `> 0`, an int `step` `>= 1`; `choices` is a non-empty list of distinct values. The worker still
  checks everything (its limits too); this only answers early what it would refuse.
  """

  alias OptunaBridge.Error

  @doc "`:ok`, or the first problem found, named by its field as the worker names it (`$.params.search_space.lr.low`)."
  @spec check(map() | struct()) :: :ok | {:error, Error.t()}
  def check(%{pairs: pairs}), do: check_all(pairs)
  def check(space) when is_map(space), do: check_all(Enum.sort(space))

  defp check_all(pairs) do
    Enum.find_value(pairs, :ok, fn {name, spec} ->
      case distribution(spec) do
        :ok -> nil
        {field, message} -> {:error, invalid("$.params.search_space.#{name}#{field}", message)}
      end
    end)
  end

  defp distribution(%{"type" => "float"} = s), do: bounds(s, &is_number/1) || float_step(s)
  defp distribution(%{"type" => "int"} = s), do: bounds(s, &is_integer/1) || int_step(s)
  defp distribution(%{"type" => "categorical"} = s), do: choices(s["choices"])

  defp distribution(%{"type" => type}),
    do: {".type", "type must be \"float\", \"int\" or \"categorical\", got: #{inspect(type)}"}

  defp distribution(_), do: {".type", "each parameter needs a type"}

  defp bounds(%{"low" => low, "high" => high} = s, number?) do
    cond do
      not (number?.(low) and number?.(high)) -> {".low", "low and high must be numbers"}
      low > high -> {".low", "low (#{low}) must be <= high (#{high})"}
      s["log"] == true and low <= 0 -> {".low", "log needs low > 0 (got #{low})"}
      true -> nil
    end
  end

  defp bounds(_, _), do: {".low", "low and high are required"}

  defp float_step(%{"step" => step} = s) when step != nil do
    cond do
      not (is_number(step) and step > 0) -> {".step", "step must be a finite number > 0"}
      s["log"] == true -> {".step", "step cannot be used with log"}
      true -> :ok
    end
  end

  defp float_step(_), do: :ok

  defp int_step(%{"step" => step} = s) when step != nil do
    cond do
      not (is_integer(step) and step >= 1) -> {".step", "step must be >= 1"}
      s["log"] == true and step != 1 -> {".step", "step cannot be used with log"}
      true -> :ok
    end
  end

  defp int_step(_), do: :ok

  defp choices([_ | _] = choices) do
    # distinct as the worker sees them: 1, 1.0 and true are three choices
    keys = Enum.map(choices, &{choice_type(&1), &1})

    if length(Enum.uniq(keys)) == length(keys),
      do: :ok,
      else: {".choices", "choices must be distinct"}
  end

  defp choices(_), do: {".choices", "choices must be a non-empty list"}

  defp choice_type(v) when is_boolean(v), do: :bool
  defp choice_type(v) when is_integer(v), do: :int
  defp choice_type(v) when is_float(v), do: :float
  defp choice_type(_), do: :other

  defp invalid(field, message) do
    error =
      Error.client(:invalid_params, "invalid search space: #{field}: #{message}", %{
        "kind" => "invalid_params",
        "field" => field
      })

    %{error | code: -32_602, method: "create"}
  end
end
