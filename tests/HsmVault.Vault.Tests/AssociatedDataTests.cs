using HsmVault.Crypto.Opaque;
using HsmVault.Crypto.Signatures;
using HsmVault.Hsm;
using HsmVault.Vault.Records;

namespace HsmVault.Vault.Tests;

/// <summary>
/// The associated data each sealed blob is bound to, byte for byte. Records, registration tickets
/// and the AKE key already stored in tokens and states open only if these bytes never change: the
/// values below were taken from the code that sealed them, before the framing was folded into one
/// helper.
/// </summary>
public sealed class AssociatedDataTests
{
    // A tenant outside ASCII, so the pinned bytes cover the UTF-8 encoding and its byte lengths.
    private static readonly UserIdentity User = new("tenänt", "alice");
    private const string Fleet = "fleet-a";

    [Fact]
    public void RecordSealer_AssociatedData_IsPinned()
    {
        var token = new RecordingToken();
        var contents = new RecordContents(new byte[UserIdentity.RegistrationNonceBytes], new byte[OpaqueSizes.RegistrationRecord], 10, new byte[3]);

        new RecordSealer(token, Fleet).Seal(User, 0x0102030405060708, contents);

        Assert.Equal(RecordHex, Convert.ToHexStringLower(token.AssociatedData.Single()));
    }

    [Fact]
    public void RegistrationTicket_AssociatedData_IsPinned()
    {
        var token = new RecordingToken();

        new RegistrationTickets(token, Fleet, TimeProvider.System, TimeSpan.FromMinutes(10)).Issue(User);

        Assert.Equal(TicketHex, Convert.ToHexStringLower(token.AssociatedData.Single()));
    }

    [Fact]
    public void AkeKey_AssociatedData_IsPinned()
    {
        var token = new RecordingToken();

        FleetKeys.CreateAkeKey(token);

        Assert.Equal(AkeKeyHex, Convert.ToHexStringLower(token.AssociatedData.Single()));
    }

    private const string RecordHex = "68736d7661756c742f7265636f72642f76310007666c6565742d61000774656ec3a46e740005616c6963650102030405060708";
    private const string TicketHex = "68736d7661756c742f726567697374726174696f6e2d7469636b65742f7631666c6565742d6100000774656ec3a46e740005616c696365";
    private const string AkeKeyHex = "68736d7661756c742f616b652d707269766174652d6b65792f7631";

    /// <summary>A token that "seals" by copying and remembers the associated data of every call.</summary>
    private sealed class RecordingToken : IVaultToken
    {
        public List<byte[]> AssociatedData { get; } = [];

        public TokenDescription Description { get; } = new("recording", "0", "test", "test", 0);

        public SigningKeyDescription SigningKey => throw new NotSupportedException();

        public SigningKeyDescription MemberIdentityKey => throw new NotSupportedException();

        public void ExpandOprfSeed(ReadOnlySpan<byte> info, Span<byte> destination) => throw new NotSupportedException();

        public byte[] Seal(ReadOnlySpan<byte> plaintext, ReadOnlySpan<byte> associatedData)
        {
            AssociatedData.Add(associatedData.ToArray());
            return plaintext.ToArray();
        }

        public byte[] Unseal(ReadOnlySpan<byte> sealedBlob, ReadOnlySpan<byte> associatedData) => throw new NotSupportedException();

        public byte[] Sign(ReadOnlySpan<byte> message) => throw new NotSupportedException();

        public byte[] SignAsMember(ReadOnlySpan<byte> message) => throw new NotSupportedException();

        public byte[]? ReadDataObject(string name) => null;

        public void WriteDataObject(string name, ReadOnlySpan<byte> value)
        {
        }

        public void Dispose()
        {
        }
    }
}
