using System.Text;
using System.Text.Json.Nodes;

namespace HsmVault.Evidence.Tests;

public sealed class CanonicalJsonTests
{
    [Fact]
    public void Encode_SortsKeysOrdinally_NoWhitespace_EscapesAsRfc8785()
    {
        var node = new JsonObject { ["b"] = 1, ["a"] = new JsonArray(true, null, "x\"\\\n\u0001é"), ["B"] = 2UL };

        var text = Encoding.UTF8.GetString(CanonicalJson.Encode(node));

        Assert.Equal("{\"B\":2,\"a\":[true,null,\"x\\\"\\\\\\n\\u0001é\"],\"b\":1}", text);
    }

    [Fact]
    public void Encode_Fraction_Refused() =>
        Assert.Throws<EvidenceFormatException>(() => CanonicalJson.Encode(new JsonObject { ["x"] = 1.5 }));
}
