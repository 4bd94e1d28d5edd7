using System.Globalization;
using HsmVault.Transparency.Merkle;

namespace HsmVault.Transparency.Notes;

/// <summary>
/// A log checkpoint in the C2SP tlog-checkpoint format (c2sp.org/tlog-checkpoint): the note
/// text <c>origin\nsize\nbase64(root)\n</c>, without extension lines.
/// </summary>
/// <param name="Origin">The log's identity; also the key name of its signature.</param>
/// <param name="TreeSize">Number of leaves.</param>
/// <param name="RootHash">RFC 9162 root of the tree of that size, 32 bytes.</param>
public sealed record Checkpoint(string Origin, ulong TreeSize, byte[] RootHash)
{
    /// <summary>The note text: origin, decimal tree size without leading zeroes, base64 root, each ending in a newline.</summary>
    public string ToNoteText()
    {
        ValidateOrigin(Origin);
        return string.Create(CultureInfo.InvariantCulture, $"{Origin}\n{TreeSize}\n{Convert.ToBase64String(RootHash)}\n");
    }

    /// <summary>Signs this checkpoint as a note of <paramref name="key"/>.</summary>
    public string Sign(NoteVerifierKey key, Func<byte[], byte[]> sign) => SignedNote.Sign(ToNoteText(), key, sign);

    /// <summary>
    /// Verifies a signed checkpoint note with <paramref name="key"/> and parses it; its origin
    /// must be <paramref name="expectedOrigin"/>.
    /// </summary>
    /// <exception cref="TransparencyException">The note does not verify, is not a checkpoint, or is another log's.</exception>
    public static Checkpoint Open(string note, NoteVerifierKey key, string expectedOrigin)
    {
        var checkpoint = ParseText(SignedNote.Open(note, key));
        return checkpoint.Origin == expectedOrigin
            ? checkpoint
            : throw new TransparencyException($"checkpoint is for log '{checkpoint.Origin}', not '{expectedOrigin}'");
    }

    /// <summary>Parses checkpoint note text (already verified). Extension lines are refused: this log never writes them.</summary>
    /// <exception cref="TransparencyException">The text is not a checkpoint.</exception>
    public static Checkpoint ParseText(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var lines = text.Split('\n');
        if (lines.Length != 4 || lines[3].Length != 0)
        {
            throw new TransparencyException("checkpoint text must be exactly three lines: origin, tree size, root hash");
        }

        ValidateOrigin(lines[0]);
        var size = lines[1];
        if (size.Length == 0 || size.Length > 20 || !size.All(char.IsAsciiDigit) || (size.Length > 1 && size[0] == '0')
            || !ulong.TryParse(size, NumberStyles.None, CultureInfo.InvariantCulture, out var treeSize))
        {
            throw new TransparencyException($"checkpoint tree size '{size}' is not a decimal number without leading zeroes");
        }

        byte[] root;
        try
        {
            root = Convert.FromBase64String(lines[2]);
        }
        catch (FormatException)
        {
            throw new TransparencyException("checkpoint root hash is not base64");
        }

        if (root.Length != MerkleHash.Size || Convert.ToBase64String(root) != lines[2])
        {
            throw new TransparencyException($"checkpoint root hash must be the canonical base64 of {MerkleHash.Size} bytes");
        }

        return new Checkpoint(lines[0], treeSize, root);
    }

    /// <summary>Throws unless <paramref name="origin"/> is a usable origin: a note key name (no spaces, no '+'), at most 255 characters.</summary>
    /// <exception cref="TransparencyException">It is not.</exception>
    public static void ValidateOrigin(string origin)
    {
        NoteVerifierKey.ValidateKeyName(origin);
        if (origin.Length > 255)
        {
            throw new TransparencyException("checkpoint origin must be at most 255 characters");
        }
    }

    /// <summary>Value equality over the root bytes too.</summary>
    public bool Equals(Checkpoint? other) =>
        other is not null && Origin == other.Origin && TreeSize == other.TreeSize && RootHash.AsSpan().SequenceEqual(other.RootHash);

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(Origin, TreeSize);
}
