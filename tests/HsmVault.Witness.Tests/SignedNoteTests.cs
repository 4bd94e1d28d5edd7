using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using HsmVault.Crypto.Signatures;
using HsmVault.Hsm;
using HsmVault.Testing;
using HsmVault.Transparency;
using HsmVault.Transparency.Notes;

namespace HsmVault.Witness.Tests;

/// <summary>
/// C2SP signed notes and checkpoints: known-answer notes from golang.org/x/mod/sumdb/note's tests
/// and from the C2SP spec verify, tampering is refused, and a checkpoint signed by a token key
/// verifies with an independent check of the key ID and the Ed25519 signature.
/// </summary>
public sealed class SignedNoteTests
{
    // golang.org/x/mod/sumdb/note note_test.go.
    private const string GoVerifierKey = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    private const string GoText = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
    private const string GoNote = GoText + "\n\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

    // c2sp.org/signed-note, "Verifier keys", example.
    private const string SpecVerifierKey = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k";
    private const string SpecNote = "This is an example message.\n\n\u2014 example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n";

    [Fact]
    public void KnownAnswerNotes_Verify_AndTheirKeyIdsAreRecomputed()
    {
        var go = NoteVerifierKey.Parse(GoVerifierKey);
        Assert.Equal(0xc74f20a3u, go.KeyId);
        Assert.Equal(GoVerifierKey, go.VerifierKey);
        Assert.Equal(GoText, SignedNote.Open(GoNote, go));

        var spec = NoteVerifierKey.Parse(SpecVerifierKey);
        Assert.Equal("This is an example message.\n", SignedNote.Open(SpecNote, spec));
    }

    [Fact]
    public void ReadmeExampleCheckpoint_Verifies()
    {
        // The example in the README's "Wire formats": it must stay a valid checkpoint.
        const string VerifierKey = "witness.example.org/hsmvault+e1c37939+AQh1X8jlRsCuKKNOdNQYwWeMaHOThiSfpPYmeCXpFGtk";
        const string Note = "witness.example.org/hsmvault\n42\nqqfUMGMVxuCvSleU0ztyqScRhOATfirYagdKmVuF8tM=\n\n\u2014 witness.example.org/hsmvault 4cN5OTe5URai2ee0Gx4/w6fqJemu0NIPRhTq3lpMIwuX7EQ1Iw39JXhHUVP4vDcS9um7jQVJVL9G4alxE7pzeS9V8w0=\n";
        var checkpoint = Checkpoint.Open(Note, NoteVerifierKey.Parse(VerifierKey), "witness.example.org/hsmvault");
        Assert.Equal(42UL, checkpoint.TreeSize);
    }

    [Fact]
    public void TamperedOrForeignNotes_AreRefused()
    {
        var go = NoteVerifierKey.Parse(GoVerifierKey);
        var spec = NoteVerifierKey.Parse(SpecVerifierKey);
        Assert.Throws<TransparencyException>(() => SignedNote.Open(GoNote.Replace("cryptography", "cryptographY", StringComparison.Ordinal), go));
        Assert.Throws<TransparencyException>(() => SignedNote.Open(SpecNote, go));
        Assert.Throws<TransparencyException>(() => SignedNote.Open(GoText, go));
        Assert.Throws<TransparencyException>(() => SignedNote.Open(GoNote.Replace("\n\n", "\n", StringComparison.Ordinal), go));
        Assert.Throws<TransparencyException>(() => SignedNote.Open(GoNote.Replace("\u2014", "-", StringComparison.Ordinal), go));
        Assert.Throws<TransparencyException>(() => SignedNote.Open("a\tb\n" + GoNote[GoText.Length..], go));
        // A verifier key whose ID does not match its name and key.
        Assert.Throws<TransparencyException>(() => NoteVerifierKey.Parse(GoVerifierKey.Replace("c74f20a3", "c74f20a4", StringComparison.Ordinal)));
        Assert.Throws<TransparencyException>(() => NoteVerifierKey.Parse("PeterNeumann+c74f20a3"));
        // Signatures by other keys are ignored; a note with both verifies under either key.
        var both = GoText + "\n" + GoNote[(GoText.Length + 1)..] + SpecNote[(SpecNote.IndexOf('\u2014', StringComparison.Ordinal))..];
        Assert.Equal(GoText, SignedNote.Open(both, go));
        Assert.Throws<TransparencyException>(() => SignedNote.Open(both, spec));
    }

    [Fact]
    public void Checkpoint_RoundTrips_AndRefusesMalformedText()
    {
        var root = SHA256.HashData("root"u8);
        var checkpoint = new Checkpoint("witness.example/log", 20852163, root);
        var text = checkpoint.ToNoteText();
        Assert.Equal($"witness.example/log\n20852163\n{Convert.ToBase64String(root)}\n", text);
        Assert.Equal(checkpoint, Checkpoint.ParseText(text));
        Assert.Throws<TransparencyException>(() => Checkpoint.ParseText($"witness.example/log\n020852163\n{Convert.ToBase64String(root)}\n"));
        Assert.Throws<TransparencyException>(() => Checkpoint.ParseText($"witness.example/log\n-1\n{Convert.ToBase64String(root)}\n"));
        Assert.Throws<TransparencyException>(() => Checkpoint.ParseText($"witness.example/log\n1\n{Convert.ToBase64String(root[..31])}\n"));
        Assert.Throws<TransparencyException>(() => Checkpoint.ParseText($"witness.example/log\n1\n{Convert.ToBase64String(root)}\nextension\n"));
        Assert.Throws<TransparencyException>(() => Checkpoint.ParseText($"witness example\n1\n{Convert.ToBase64String(root)}\n"));
    }

    [Fact]
    public void CheckpointSignedByTokenKey_VerifiesIndependently()
    {
        var options = SoftHsmEnvironment.Shared.CreateToken();
        using var key = TokenSigningKey.Open(options, "note-key", generateIfMissing: true);
        Assert.True(key.Generated);
        Assert.Equal(SignatureAlgorithm.Ed25519, key.PublicKey.Algorithm);
        var noteKey = NoteVerifierKey.Create("witness.example/log", key.PublicKey);
        var checkpoint = new Checkpoint("witness.example/log", 7, SHA256.HashData("seven"u8));
        var note = checkpoint.Sign(noteKey, m => key.Sign(m));

        // Independently of SignedNote: split the note by hand, recompute the key ID from the
        // spec's formula, and check the Ed25519 signature with libsodium over the text bytes.
        var text = checkpoint.ToNoteText();
        Assert.StartsWith(text + "\n\u2014 witness.example/log ", note, StringComparison.Ordinal);
        var blob = Convert.FromBase64String(note[(text.Length + "\n\u2014 witness.example/log ".Length)..^1]);
        Assert.Equal(68, blob.Length);
        var keyId = SHA256.HashData([.. Encoding.UTF8.GetBytes("witness.example/log"), 0x0A, 0x01, .. key.PublicKey.PublicKey])[..4];
        Assert.Equal(keyId, blob[..4]);
        Assert.True(key.PublicKey.Verifies(Encoding.UTF8.GetBytes(text), blob.AsSpan(4)));
        Assert.Equal(BinaryPrimitives.ReadUInt32BigEndian(keyId), noteKey.KeyId);

        // And through the library, with the key as a client would pin it (its vkey text).
        Assert.Equal(checkpoint, Checkpoint.Open(note, NoteVerifierKey.Parse(noteKey.VerifierKey), "witness.example/log"));
        Assert.Throws<TransparencyException>(() => Checkpoint.Open(note, noteKey, "another.example/log"));
        Assert.Throws<TransparencyException>(() => Checkpoint.Open(note.Replace("\n7\n", "\n8\n", StringComparison.Ordinal), noteKey, "witness.example/log"));
    }

    [Fact]
    public void TokenSigningKey_IsFoundAgain_AndIsNeverExtractable()
    {
        var options = SoftHsmEnvironment.Shared.CreateToken();
        SigningKeyDescription first;
        using (var key = TokenSigningKey.Open(options, "witness-key", generateIfMissing: true))
        {
            first = key.PublicKey;
        }

        using var again = TokenSigningKey.Open(options, "witness-key", generateIfMissing: false);
        Assert.False(again.Generated);
        Assert.Equal(first, again.PublicKey);
        Assert.True(first.Verifies("message"u8, again.Sign("message"u8)));
        var missing = Assert.Throws<TokenConfigurationException>(() => TokenSigningKey.Open(options, "other-key", generateIfMissing: false));
        Assert.Contains("other-key", missing.Message, StringComparison.Ordinal);
        Assert.Equal(new TokenKeyAttributes(Local: true, NeverExtractable: true, AlwaysSensitive: true, Sensitive: true, Extractable: false), again.ReadAttributes());
    }
}
