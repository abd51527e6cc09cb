defmodule OptunaBridge.Artifacts do
  @moduledoc """
  Files per trial and per study (the worker's `artifact_put`, `artifacts`, `artifact_get`; the
  worker must run with `--artifacts DIR`, else `:not_configured`). Stored as Optuna's
  `upload_artifact` stores them, so optuna-dashboard shows them.

  Uploads stream in chunks (`:chunk_size`, default 1 MiB) with the whole file's SHA-256 on the
  last one; downloads come part by part, to a binary or to a file.
  """

  alias OptunaBridge.{Error, Study}

  @chunk 1_048_576

  @doc """
  Uploads `path_or_binary` (`{:file, path}` or a binary) as an artifact of trial `number`
  (`nil`: of the study; a trial must still be running, as in Optuna). Options: `:name`
  (required for a binary; default the file's base name), `:content_type`, `:chunk_size`,
  `:timeout` (per chunk). Returns `{:ok, %{"artifact_id" => id, "size" => n, "sha256" => hex}}`.
  """
  @spec put_artifact(
          Study.study(),
          non_neg_integer() | nil,
          binary() | {:file, Path.t()},
          keyword()
        ) ::
          {:ok, map()} | {:error, Error.t()}
  def put_artifact(study, number, source, opts \\ []) do
    opts = Keyword.validate!(opts, [:name, :content_type, :timeout, chunk_size: @chunk])

    unless number == nil or (is_integer(number) and number >= 0),
      do: raise(ArgumentError, "number must be a trial number or nil, got: #{inspect(number)}")

    chunk_size = opts[:chunk_size]

    unless is_integer(chunk_size) and chunk_size > 0,
      do: raise(ArgumentError, "chunk_size must be a positive integer")

    {name, chunks, digest} = source!(source, opts[:name], chunk_size)

    base =
      %{"name" => name}
      |> put_if("number", number)
      |> put_if("content_type", opts[:content_type])

    upload(study, base, chunks, digest, Keyword.take(opts, [:timeout]))
  end

  defp source!({:file, path}, name, size) do
    digest =
      path
      |> File.stream!([], 65_536)
      |> Enum.reduce(:crypto.hash_init(:sha256), &:crypto.hash_update(&2, &1))
      |> :crypto.hash_final()

    {name || Path.basename(path), File.stream!(path, [], size), digest}
  end

  defp source!(binary, name, size) when is_binary(binary) do
    unless is_binary(name) and name != "",
      do: raise(ArgumentError, "name: is required to upload a binary")

    chunks = for <<part::binary-size(size) <- binary>>, do: part
    rest = binary_part(binary, length(chunks) * size, byte_size(binary) - length(chunks) * size)
    {name, chunks ++ [rest], :crypto.hash(:sha256, binary)}
  end

  defp source!(other, _name, _size),
    do: raise(ArgumentError, "upload a binary or {:file, path}, got: #{inspect(other)}")

  defp upload(study, base, chunks, digest, opts) do
    hex = Base.encode16(digest, case: :lower)

    chunks
    |> Stream.concat([:end])
    |> Stream.chunk_every(2, 1, :discard)
    |> Enum.reduce_while({:ok, 0}, fn [chunk, next], {:ok, offset} ->
      final = next == :end

      params =
        Map.merge(base, %{
          "data" => Base.encode64(chunk),
          "offset" => offset,
          "final" => final
        })

      params = if final, do: Map.put(params, "sha256", hex), else: params

      case Study.study_request(study, "artifact_put", params, opts) do
        {:ok, result} when final -> {:halt, {:ok, result}}
        {:ok, _} -> {:cont, {:ok, offset + byte_size(chunk)}}
        error -> {:halt, error}
      end
    end)
  end

  @doc "The study's artifacts (its own and every trial's), or trial `number`'s. Option: `:timeout`."
  @spec artifacts(Study.study(), non_neg_integer() | nil, keyword()) ::
          {:ok, [map()]} | {:error, Error.t()}
  def artifacts(study, number \\ nil, opts \\ []) do
    opts = Keyword.validate!(opts, [:timeout])

    with {:ok, %{"artifacts" => list}} <-
           Study.study_request(study, "artifacts", put_if(%{}, "number", number), opts),
         do: {:ok, list}
  end

  @doc """
  Downloads an artifact of the study: `{:ok, binary}`, or with `to: path` written to that file
  (`{:ok, path}`). Options: `:to`, `:timeout` (per part).
  """
  @spec get_artifact(Study.study(), String.t(), keyword()) ::
          {:ok, binary() | Path.t()} | {:error, Error.t()}
  def get_artifact(study, artifact_id, opts \\ []) when is_binary(artifact_id) do
    opts = Keyword.validate!(opts, [:to, :timeout])
    call_opts = Keyword.take(opts, [:timeout])

    case {fetch(study, artifact_id, 0, [], call_opts), opts[:to]} do
      {{:ok, data}, nil} ->
        {:ok, data}

      {{:ok, data}, path} ->
        File.write!(path, data)
        {:ok, path}

      {error, _} ->
        error
    end
  end

  defp fetch(study, id, offset, acc, opts) do
    params = %{"artifact_id" => id, "offset" => offset}

    with {:ok, %{"data" => data, "eof" => eof}} <-
           Study.study_request(study, "artifact_get", params, opts) do
      part = Base.decode64!(data)
      acc = [acc, part]

      if eof,
        do: {:ok, IO.iodata_to_binary(acc)},
        else: fetch(study, id, offset + byte_size(part), acc, opts)
    end
  end

  defp put_if(map, _key, nil), do: map
  defp put_if(map, key, value), do: Map.put(map, key, value)
end
