defmodule OptunaBridge.PackageTest do
  @moduledoc """
  The Hex package as `mix hex.build` would make it, read from `package: [files: ...]` (Hex is
  absent here): real files inside this folder only (a symlink is stored as a symlink in the
  tarball), the files a published package needs, and links that work on hexdocs.pm.
  """
  use ExUnit.Case, async: true

  @root Path.expand("../..", __DIR__)
  @config Mix.Project.config()

  defp package_files do
    for entry <- @config[:package][:files],
        # priv/ is made by `make dist`; without it there is nothing there to check
        File.exists?(Path.join(@root, entry)) or entry != "priv",
        path <- expand(Path.join(@root, entry)),
        do: path
  end

  # A folder stands for everything under it, as Hex reads it (symlinks are not followed).
  defp expand(path) do
    case File.lstat!(path).type do
      :directory -> [path | Enum.flat_map(File.ls!(path), &expand(Path.join(path, &1)))]
      _ -> [path]
    end
  end

  test "every entry exists and the license, changelog, readme and priv ship" do
    files = @config[:package][:files]
    assert Enum.all?(files -- ["priv"], &File.exists?(Path.join(@root, &1)))

    for must <- ~w(lib priv mix.exs README.md LICENSE CHANGELOG.md .formatter.exs),
        do: assert(must in files)
  end

  test "no symlink and nothing outside the package" do
    paths = package_files()
    assert length(paths) > 20

    for path <- paths do
      assert File.lstat!(path).type != :symlink, "#{path} is a symlink"
      assert String.starts_with?(Path.expand(path), @root <> "/"), "#{path} is outside"
    end
  end

  test "LICENSE is a real file, the repository's license" do
    license = Path.join(@root, "LICENSE")
    assert File.lstat!(license).type == :regular
    assert File.read!(license) == File.read!(Path.join(@root, "../../LICENSE"))
  end

  test "README and CHANGELOG links are absolute, into the repository at source_url" do
    for doc <- ~w(README.md CHANGELOG.md) do
      links =
        Regex.scan(~r/\]\(([^)\s]+)\)/, File.read!(Path.join(@root, doc)), capture: :all_but_first)

      for [link] <- links do
        assert String.starts_with?(link, ["https://", "http://", "#"]), "#{doc}: #{link}"

        if String.contains?(link, "optuna-bridge/optuna-bridge"),
          do: assert(String.starts_with?(link, @config[:source_url]), "#{doc}: #{link}")
      end
    end
  end

  test "no Hex dependency is declared where Hex is absent; docs and changelog are configured" do
    unless Code.ensure_loaded?(Hex), do: assert(@config[:deps] == [])
    assert "CHANGELOG.md" in @config[:docs][:extras]
    assert @config[:package][:licenses] == ["MIT"]
  end
end
