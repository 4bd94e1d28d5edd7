namespace HsmVault.Hsm.Internal;

/// <summary>Labels of the vault's objects in a token, all under one configurable prefix.</summary>
internal sealed record FleetKeyLabels(string Prefix)
{
    public string OprfSeed => Prefix + "-oprf-seed";

    public string RecordKey => Prefix + "-record-key";

    public string SigningKey => Prefix + "-signing-key";

    public string SigningPublicKey => Prefix + "-signing-key-pub";

    /// <summary>This member's own identity key: generated here, never extractable, never copied to another token.</summary>
    public string MemberIdentityKey => Prefix + "-member-identity-key";

    public string MemberIdentityPublicKey => Prefix + "-member-identity-key-pub";

    public string DataObject(string name) => Prefix + "-" + name;
}
