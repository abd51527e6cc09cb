defmodule OptunaBridge.ArtifactsTest do
  @moduledoc "Artifacts through the Elixir client against a worker started with `--artifacts`."
  use ExUnit.Case, async: true

  alias OptunaBridge.{Error, Study}

  @space [x: [type: "float", low: 0.0, high: 1.0]]

  @tag :tmp_dir
  test "a file streams up in chunks and comes back", %{tmp_dir: dir} do
    args = ["--artifacts", Path.join(dir, "store")]
    study = start_supervised!({Study, {%{name: "art"}, @space, [worker_args: args]}})
    :ok = Study.await_ready(study)
    {:ok, [t]} = Study.ask(study)
    blob = :crypto.strong_rand_bytes(200_000)
    path = Path.join(dir, "model.bin")
    File.write!(path, blob)

    assert {:ok, %{"artifact_id" => id, "size" => 200_000, "sha256" => sha}} =
             Study.put_artifact(study, t.number, {:file, path}, chunk_size: 65_536)

    assert sha == Base.encode16(:crypto.hash(:sha256, blob), case: :lower)

    assert {:ok, %{"artifact_id" => notes}} =
             Study.put_artifact(study, nil, "hello", name: "notes.txt", content_type: "text/plain")

    assert {:ok, ^blob} = Study.get_artifact(study, id)
    out = Path.join(dir, "back.bin")
    assert {:ok, ^out} = Study.get_artifact(study, notes, to: out)
    assert File.read!(out) == "hello"
    {:ok, listed} = Study.artifacts(study)
    assert Enum.sort(Enum.map(listed, & &1["name"])) == ["model.bin", "notes.txt"]
    {:ok, [only]} = Study.artifacts(study, t.number)
    assert only["name"] == "model.bin"

    assert {:error, %Error{kind: :invalid_params}} = Study.get_artifact(study, "nope")
    assert_raise ArgumentError, fn -> Study.put_artifact(study, nil, "x") end
    assert_raise ArgumentError, fn -> Study.put_artifact(study, -1, "x", name: "a") end
    assert_raise ArgumentError, fn -> Study.put_artifact(study, nil, 5, name: "a") end

    assert_raise ArgumentError, fn ->
      Study.put_artifact(study, nil, "x", name: "a", chunk_size: 0)
    end
  end

  test "without --artifacts the worker says :not_configured" do
    study = start_supervised!({Study, {%{name: "noart"}, @space, []}})
    :ok = Study.await_ready(study)

    assert {:error, %Error{kind: :not_configured, code: -32013}} =
             Study.put_artifact(study, nil, "x", name: "a")

    assert {:error, %Error{kind: :not_configured}} = Study.artifacts(study)
  end
end
