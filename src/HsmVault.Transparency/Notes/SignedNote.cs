using System.Buffers.Binary;
using System.Text;

namespace HsmVault.Transparency.Notes;

/// <summary>
/// C2SP signed notes (c2sp.org/signed-note): a text ending in a newline, a blank line, then
/// signature lines <c>— name base64(key ID || signature)</c>. Only Ed25519 signatures (type
/// 0x01) are made and checked here, which is what golang.org/x/mod/sumdb/note verifies.
/// </summary>
public static class SignedNote
{
    /// <summary>Largest note accepted, in bytes (the spec asks verifiers to bound a note's size).</summary>
    public const int MaxNoteBytes = 64 * 1024;

    /// <summary>Most signature lines accepted; the spec asks for at least 16.</summary>
    public const int MaxSignatures = 100;

    /// <summary>Em dash (U+2014) and a space: how every signature line starts.</summary>
    private const string SignaturePrefix = "\u2014 ";

    /// <summary>Length of an Ed25519 signature.</summary>
    private const int Ed25519SignatureBytes = 64;

    /// <summary>
    /// Signs <paramref name="text"/> as a note of <paramref name="key"/>; <paramref name="sign"/>
    /// makes the Ed25519 signature (RFC 8032) of the text's UTF-8 bytes, e.g. in a token.
    /// </summary>
    /// <returns>The signed note: text, blank line, one signature line.</returns>
    /// <exception cref="TransparencyException">The text is not valid note text.</exception>
    public static string Sign(string text, NoteVerifierKey key, Func<byte[], byte[]> sign)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(sign);
        ValidateText(text);
        var signature = sign(Encoding.UTF8.GetBytes(text));
        if (signature.Length != Ed25519SignatureBytes)
        {
            throw new TransparencyException($"an Ed25519 signature has {Ed25519SignatureBytes} bytes, not {signature.Length}");
        }

        var blob = new byte[4 + Ed25519SignatureBytes];
        BinaryPrimitives.WriteUInt32BigEndian(blob, key.KeyId);
        signature.CopyTo(blob, 4);
        return $"{text}\n{SignaturePrefix}{key.Name} {Convert.ToBase64String(blob)}\n";
    }

    /// <summary>
    /// Verifies <paramref name="note"/> with <paramref name="key"/> and returns its text.
    /// Signatures by other keys are ignored, as the spec requires; the note is refused unless a
    /// signature of <paramref name="key"/> verifies, and refused if one of its signatures fails.
    /// </summary>
    /// <exception cref="TransparencyException">The note is malformed or not signed by <paramref name="key"/>; the message says which.</exception>
    public static string Open(string note, NoteVerifierKey key)
    {
        ArgumentNullException.ThrowIfNull(note);
        ArgumentNullException.ThrowIfNull(key);
        if (Encoding.UTF8.GetByteCount(note) > MaxNoteBytes)
        {
            throw new TransparencyException($"note is larger than {MaxNoteBytes} bytes");
        }

        if (note.Any(c => c < 0x20 && c != '\n'))
        {
            throw new TransparencyException("note contains a control character other than newline");
        }

        // The text is separated from the signatures by the last empty line.
        var split = note.LastIndexOf("\n\n", StringComparison.Ordinal);
        if (split < 0 || !note.EndsWith('\n'))
        {
            throw new TransparencyException("note is malformed: no blank line before the signatures, or no final newline");
        }

        var text = note[..(split + 1)];
        var lines = note[(split + 2)..^1].Split('\n');
        if (lines.Length > MaxSignatures)
        {
            throw new TransparencyException($"note has {lines.Length} signatures; at most {MaxSignatures} are accepted");
        }

        var textBytes = Encoding.UTF8.GetBytes(text);
        var verified = false;
        foreach (var line in lines)
        {
            var (name, blob) = ParseSignatureLine(line);
            if (name != key.Name || blob.Length < 4 || BinaryPrimitives.ReadUInt32BigEndian(blob) != key.KeyId)
            {
                continue;
            }

            if (blob.Length != 4 + Ed25519SignatureBytes || !key.SigningKey.Verifies(textBytes, blob.AsSpan(4)))
            {
                throw new TransparencyException($"note's signature by '{key.Name}' (key ID {key.KeyId:x8}) does not verify");
            }

            verified = true;
        }

        return verified
            ? text
            : throw new TransparencyException($"note carries no signature by '{key.Name}' (key ID {key.KeyId:x8})");
    }

    /// <summary>
    /// The text of <paramref name="note"/> without checking any signature: for reading what to fetch
    /// or whom to ask (a checkpoint's size or origin), never as a proof.
    /// </summary>
    /// <exception cref="TransparencyException">The note is malformed.</exception>
    public static string UnverifiedText(string note)
    {
        ArgumentNullException.ThrowIfNull(note);
        var split = note.LastIndexOf("\n\n", StringComparison.Ordinal);
        return split < 0 || !note.EndsWith('\n')
            ? throw new TransparencyException("note is malformed: no blank line before the signatures, or no final newline")
            : note[..(split + 1)];
    }

    /// <summary>
    /// The (key name, key ID) of each signature line of <paramref name="note"/>, unverified: for
    /// finding which pinned key to verify it with, never as a proof.
    /// </summary>
    /// <exception cref="TransparencyException">The note is malformed.</exception>
    public static IReadOnlyList<(string Name, uint KeyId)> Signers(string note)
    {
        ArgumentNullException.ThrowIfNull(note);
        var split = note.LastIndexOf("\n\n", StringComparison.Ordinal);
        if (split < 0 || !note.EndsWith('\n'))
        {
            throw new TransparencyException("note is malformed: no blank line before the signatures, or no final newline");
        }

        return [.. note[(split + 2)..^1].Split('\n').Select(ParseSignatureLine)
            .Where(s => s.Blob.Length >= 4)
            .Select(s => (s.Name, BinaryPrimitives.ReadUInt32BigEndian(s.Blob)))];
    }

    /// <summary>Throws unless <paramref name="text"/> can be a note's text: non-empty, ending in a newline, no control characters but newlines.</summary>
    /// <exception cref="TransparencyException">It cannot.</exception>
    public static void ValidateText(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (text.Length == 0 || !text.EndsWith('\n'))
        {
            throw new TransparencyException("note text must end with a newline");
        }

        if (text.Any(c => c < 0x20 && c != '\n'))
        {
            throw new TransparencyException("note text must not contain control characters other than newline");
        }
    }

    private static (string Name, byte[] Blob) ParseSignatureLine(string line)
    {
        if (!line.StartsWith(SignaturePrefix, StringComparison.Ordinal))
        {
            throw new TransparencyException("note is malformed: a signature line does not start with an em dash and a space");
        }

        var rest = line[SignaturePrefix.Length..];
        var space = rest.IndexOf(' ', StringComparison.Ordinal);
        if (space <= 0 || rest.IndexOf(' ', space + 1) >= 0)
        {
            throw new TransparencyException("note is malformed: a signature line is not '— name signature'");
        }

        try
        {
            return (rest[..space], Convert.FromBase64String(rest[(space + 1)..]));
        }
        catch (FormatException)
        {
            throw new TransparencyException($"note is malformed: the signature of '{rest[..space]}' is not base64");
        }
    }
}
