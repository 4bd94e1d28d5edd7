using HsmVault.Crypto.Signatures;

namespace HsmVault.Witness;

/// <summary>
/// The witness's configuration, bound from the <c>HsmVault:Witness</c> section (the token from
/// <c>HsmVault:Token</c>, as for <c>hsmvaultd</c>). Checked by <see cref="WitnessOptionsValidator"/>.
/// </summary>
public sealed class WitnessOptions
{
    /// <summary>Configuration section these options bind from.</summary>
    public const string SectionName = "HsmVault:Witness";

    /// <summary>
    /// The log's identity: the first line of every checkpoint and the key name of its
    /// signatures (c2sp.org/tlog-checkpoint), e.g. <c>witness.example.org/hsmvault</c>.
    /// Fixed for the log's life.
    /// </summary>
    public string Origin { get; set; } = "";

    /// <summary>Folder of the log's SQLite file (<c>witness.db</c>).</summary>
    public string DataDirectory { get; set; } = "";

    /// <summary>Label of the witness's Ed25519 key in the token (its public half is <c>{label}-pub</c>).</summary>
    public string KeyLabel { get; set; } = "hsmvault-witness-key";

    /// <summary>Whether to generate the key in the token on first start when the token has none.</summary>
    public bool GenerateKeyIfMissing { get; set; } = true;

    /// <summary>The namespaces this witness logs, each with the operator keys that may submit to it.</summary>
    public IList<WitnessNamespaceOptions> Namespaces { get; } = [];
}

/// <summary>One namespace the witness logs.</summary>
public sealed class WitnessNamespaceOptions
{
    /// <summary>The namespace: 1..128 characters of A-Z, a-z, 0-9 and <c>. _ : / -</c>.</summary>
    public string Name { get; set; } = "";

    /// <summary>Keys whose signature authorises a submission (any one suffices; more than one lets an operator rotate).</summary>
    public IList<OperatorKeyOptions> OperatorKeys { get; } = [];
}

/// <summary>An operator's public key.</summary>
public sealed class OperatorKeyOptions
{
    /// <summary>The key's algorithm.</summary>
    public SignatureAlgorithm Algorithm { get; set; } = SignatureAlgorithm.Ed25519;

    /// <summary>Base64 public key: Ed25519 32 bytes, P-256 uncompressed 65 bytes.</summary>
    public string PublicKey { get; set; } = "";

    /// <summary>The key as a description, once validated.</summary>
    public SigningKeyDescription ToDescription() => new(Algorithm, Convert.FromBase64String(PublicKey));
}
