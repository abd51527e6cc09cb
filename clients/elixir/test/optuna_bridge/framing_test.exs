defmodule OptunaBridge.FramingTest do
  use ExUnit.Case, async: true
  doctest OptunaBridge.Framing

  alias OptunaBridge.Framing

  test "a line split into many {:noeol, chunk} pieces is reassembled once" do
    {:more, buf} = Framing.feed(:line, [], {:noeol, "ab"})
    {:more, buf} = Framing.feed(:line, buf, {:noeol, "cd"})
    assert {:frame, "abcdef", []} = Framing.feed(:line, buf, {:eol, "ef"})
  end

  test "blank lines are skipped" do
    assert {:more, []} = Framing.feed(:line, [], {:eol, "  "})
  end

  test "packet4 messages are whole frames; the port adds the header" do
    assert {:frame, "{}", []} = Framing.feed(:packet4, [], "{}")
    assert Framing.encode(:packet4, "{}") == "{}"
    assert IO.iodata_to_binary(Framing.encode(:line, "{}")) == "{}\n"
  end

  test "port options and worker flags" do
    assert Framing.port_option(:line) == {:line, 65_536}
    assert Framing.port_option(:packet4) == {:packet, 4}
    assert {:error, _} = Framing.validate(:json)
  end
end
