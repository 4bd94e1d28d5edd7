using System.Text.Json;
using HsmVault.Transparency;
using HsmVault.Transparency.Merkle;
using HsmVault.Witness.Tests.Support;

namespace HsmVault.Witness.Tests;

/// <summary>Every file of the independent transparency-dev/merkle vectors: wantErr files refused, the others verified.</summary>
public sealed class MerkleVectorTests
{
    public static TheoryData<string> Files() => [.. VectorFiles.All()];

    [Fact]
    public void Vectors_ArePresent_InBothKinds()
    {
        var files = VectorFiles.All().ToList();
        Assert.Contains(files, f => f.StartsWith("inclusion", StringComparison.Ordinal));
        Assert.Contains(files, f => f.StartsWith("consistency", StringComparison.Ordinal));
        Assert.True(files.Count >= 190, $"only {files.Count} vector files");
        Assert.Contains(files, f => !Read(f).WantErr);
    }

    [Theory]
    [MemberData(nameof(Files))]
    public void Vector_IsVerifiedOrRefused_AsItSays(string file)
    {
        var vector = Read(file);
        var refusal = Record.Exception(() => Verify(file, vector.Json));
        if (vector.WantErr)
        {
            Assert.IsType<TransparencyException>(refusal);
        }
        else
        {
            Assert.Null(refusal);
        }
    }

    private static void Verify(string file, JsonElement json)
    {
        var proof = json.GetProperty("proof").ValueKind == JsonValueKind.Null
            ? []
            : json.GetProperty("proof").EnumerateArray().Select(e => Convert.FromBase64String(e.GetString()!)).ToList();
        if (file.StartsWith("inclusion", StringComparison.Ordinal))
        {
            MerkleVerifier.VerifyInclusion(
                json.GetProperty("leafIdx").GetUInt64(), json.GetProperty("treeSize").GetUInt64(),
                Bytes(json, "leafHash"), proof, Bytes(json, "root"));
        }
        else
        {
            MerkleVerifier.VerifyConsistency(
                json.GetProperty("size1").GetUInt64(), json.GetProperty("size2").GetUInt64(),
                Bytes(json, "root1"), Bytes(json, "root2"), proof);
        }
    }

    private static byte[] Bytes(JsonElement json, string name) =>
        json.GetProperty(name).ValueKind == JsonValueKind.Null ? [] : Convert.FromBase64String(json.GetProperty(name).GetString()!);

    private static (JsonElement Json, bool WantErr) Read(string file)
    {
        using var document = JsonDocument.Parse(File.ReadAllText(Path.Combine(VectorFiles.MerkleDirectory, file)));
        var json = document.RootElement.Clone();
        return (json, json.GetProperty("wantErr").GetBoolean());
    }
}
