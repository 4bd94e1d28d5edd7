using HsmVault.Vault.State;

namespace HsmVault.Vault.Tests;

/// <summary>The byte form of log entries: exact round trips, and anything else refused as InvalidDataException.</summary>
public sealed class VaultCommandCodecTests
{
    private static readonly UserIdentity Alice = new("https://issuer.example/tenant-ü", "alice@example.com");
    private static readonly byte[] Nonce = [.. Enumerable.Range(100, 16).Select(i => (byte)i)];

    public static TheoryData<string> CommandNames => [.. Commands().Keys];

    [Theory]
    [MemberData(nameof(CommandNames))]
    public void EncodeThenDecode_GivesTheSameCommand(string name)
    {
        var command = Commands()[name];

        var decoded = VaultCommandCodec.Decode(VaultCommandCodec.Encode(command));

        Assert.Equal(command.GetType(), decoded.GetType());
        if (command is RegisterCommand register)
        {
            var decodedRegister = Assert.IsType<RegisterCommand>(decoded);
            Assert.Equal(register.User, decodedRegister.User);
            Assert.Equal(register.ExpectedVersion, decodedRegister.ExpectedVersion);
            Assert.Equal(register.GuessLimit, decodedRegister.GuessLimit);
            Assert.Equal(register.Replace, decodedRegister.Replace);
            Assert.Equal(register.SealedRecord, decodedRegister.SealedRecord);
            Assert.Equal(register.RegistrationNonce, decodedRegister.RegistrationNonce);
            Assert.Equal(register.Registered, decodedRegister.Registered);
            Assert.Equal(register.Pending, decodedRegister.Pending);
        }

        if (command is ActivateCommand activate)
        {
            var decodedActivate = Assert.IsType<ActivateCommand>(decoded);
            Assert.Equal((activate.User, activate.Version, activate.Algorithm), (decodedActivate.User, decodedActivate.Version, decodedActivate.Algorithm));
            Assert.Equal(activate.Receipt, decodedActivate.Receipt);
            Assert.Equal(activate.Signature, decodedActivate.Signature);
        }

        // The encoding is deterministic: the same fields give the same bytes.
        Assert.Equal(VaultCommandCodec.Encode(command), VaultCommandCodec.Encode(decoded));
    }

    [Theory]
    [MemberData(nameof(CommandNames))]
    public void Decode_EveryTruncation_ThrowsInvalidData(string name)
    {
        var encoded = VaultCommandCodec.Encode(Commands()[name]);

        for (var length = 0; length < encoded.Length; length++)
        {
            var prefix = encoded[..length];
            var e = Record.Exception(() => VaultCommandCodec.Decode(prefix));
            Assert.True(e is InvalidDataException, $"{name} cut to {length} of {encoded.Length} bytes: {e?.GetType().Name ?? "decoded"}");
        }
    }

    [Theory]
    [MemberData(nameof(CommandNames))]
    public void Decode_TrailingBytes_ThrowsInvalidData(string name)
    {
        var encoded = VaultCommandCodec.Encode(Commands()[name]);

        Assert.Throws<InvalidDataException>(() => VaultCommandCodec.Decode([.. encoded, 0]));
    }

    [Fact]
    public void Decode_UnknownFormatVersion_ThrowsInvalidData()
    {
        var encoded = VaultCommandCodec.Encode(new DeleteCommand(Alice, 4));
        encoded[0] = 1;

        Assert.Throws<InvalidDataException>(() => VaultCommandCodec.Decode(encoded));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(9)]
    [InlineData(255)]
    public void Decode_UnknownKind_ThrowsInvalidData(byte kind)
    {
        var encoded = VaultCommandCodec.Encode(new ChargeGuessCommand(Alice, 1, 0, new byte[16]));
        encoded[1] = kind;

        Assert.Throws<InvalidDataException>(() => VaultCommandCodec.Decode(encoded));
    }

    [Fact]
    public void Decode_ImplausibleSealedRecordLength_ThrowsInvalidData()
    {
        var encoded = VaultCommandCodec.Encode(new RegisterCommand(Alice, 0, 10, [1, 2, 3], false, new byte[16]));

        // The length is the int32 just before the 3 blob bytes, which the pending flag and the
        // event (an int32 length and an empty history's count byte) follow.
        BitConverter.GetBytes(int.MaxValue).CopyTo(encoded, encoded.Length - 7 - 6);

        Assert.Throws<InvalidDataException>(() => VaultCommandCodec.Decode(encoded));
    }

    [Fact]
    public void Decode_MalformedStringLength_ThrowsInvalidData()
    {
        // Format 2, kind ChargeGuess, then a 7-bit length that never ends.
        byte[] garbage = [2, 2, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01];

        Assert.Throws<InvalidDataException>(() => VaultCommandCodec.Decode(garbage));
    }

    [Fact]
    public void Decode_EmptyUserId_ThrowsInvalidData()
    {
        // Format 1, kind Delete, tenant "t", user "": not an identity the vault could have written.
        byte[] encoded = [1, 5, 1, (byte)'t', 0];

        Assert.Throws<InvalidDataException>(() => VaultCommandCodec.Decode(encoded));
    }

    [Fact]
    public void Decode_RandomBytes_OnlyEverThrowsInvalidData()
    {
        var random = new Random(7);
        for (var i = 0; i < 2000; i++)
        {
            var bytes = new byte[random.Next(0, 40)];
            random.NextBytes(bytes);
            if (bytes.Length > 0)
            {
                bytes[0] = 1;
            }

            var e = Record.Exception(() => VaultCommandCodec.Decode(bytes));
            Assert.True(e is null or InvalidDataException, $"{Convert.ToHexString(bytes)}: {e?.GetType().Name}");
        }
    }

    [Theory]
    [InlineData(CommandOutcome.Charged, 0)]
    [InlineData(CommandOutcome.Charged, 254)]
    [InlineData(CommandOutcome.Registered, 255)]
    [InlineData(CommandOutcome.Unchanged, 3)]
    public void Result_RoundTrips(CommandOutcome outcome, int remaining)
    {
        var result = new CommandResult(outcome, remaining);

        Assert.Equal(result, VaultCommandCodec.DecodeResult(VaultCommandCodec.EncodeResult(result)));
    }

    [Fact]
    public void DecodeResult_Malformed_ThrowsInvalidData()
    {
        Assert.Throws<InvalidDataException>(() => VaultCommandCodec.DecodeResult([]));
        Assert.Throws<InvalidDataException>(() => VaultCommandCodec.DecodeResult([4]));
        Assert.Throws<InvalidDataException>(() => VaultCommandCodec.DecodeResult([4, 1, 0]));
        Assert.Throws<InvalidDataException>(() => VaultCommandCodec.DecodeResult([0, 1]));
        Assert.Throws<InvalidDataException>(() => VaultCommandCodec.DecodeResult([99, 1]));
    }

    [Fact]
    public void Decode_RegistrationOfTheFormerKind_StillDecodes()
    {
        // Kind 1, written before registrations carried their history event: format 2, kind 1, the
        // user, expected version 0, limit 10, no replace, the nonce and a 1-byte blob.
        using var stream = new MemoryStream();
        using (var writer = new BinaryWriter(stream, System.Text.Encoding.UTF8, leaveOpen: true))
        {
            writer.Write((byte)2);
            writer.Write((byte)1);
            writer.Write(Alice.Tenant);
            writer.Write(Alice.UserId);
            writer.Write(0L);
            writer.Write((byte)10);
            writer.Write(false);
            writer.Write(Nonce.Length);
            writer.Write(Nonce);
            writer.Write(1);
            writer.Write((byte)9);
        }

        var decoded = Assert.IsType<RegisterCommand>(VaultCommandCodec.Decode(stream.ToArray()));

        Assert.Equal((Alice, 10, false, false), (decoded.User, decoded.GuessLimit, decoded.Replace, decoded.Pending));
        Assert.Null(decoded.Registered);
    }

    private static Dictionary<string, VaultCommand> Commands() => new()
    {
        ["register-pending-with-history"] = new RegisterCommand(Alice, 2, 5, [1, 2], Replace: false, Nonce,
            new Protocol.Moves.RegistrationEvent("fleet-b", 7, 1_780_000_000_000), Pending: true),
        ["activate"] = new ActivateCommand(Alice, 3, [.. Enumerable.Range(0, 90).Select(i => (byte)i)], Crypto.Signatures.SignatureAlgorithm.EcdsaP256Sha256,
            [.. Enumerable.Range(0, 64).Select(i => (byte)i)]),
        ["register"] = new RegisterCommand(Alice, 41, 255, [.. Enumerable.Range(0, 300).Select(i => (byte)i)], Replace: false, Nonce),
        ["register-replace"] = new RegisterCommand(Alice, long.MaxValue - 1, 1, [7], Replace: true, Nonce),
        ["register-empty-blob"] = new RegisterCommand(Alice, 0, 10, [], Replace: false, Nonce),
        ["charge"] = new ChargeGuessCommand(Alice, 3, 7, [.. Enumerable.Range(0, 16).Select(i => (byte)i)]),
        ["reset"] = new ResetGuessesCommand(Alice, long.MaxValue, 8),
        ["state-digest"] = new StateDigestCommand(ulong.MaxValue, [.. Enumerable.Range(0, 32).Select(i => (byte)i)]),
        ["destroy-if-exhausted"] = new DestroyIfExhaustedCommand(Alice, 1),
        ["delete"] = new DeleteCommand(Alice, 4),
    };
}
