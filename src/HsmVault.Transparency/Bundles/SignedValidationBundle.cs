using HsmVault.Crypto.Signatures;

namespace HsmVault.Transparency.Bundles;

/// <summary>A signature and the algorithm that made it (the wire's <c>TaggedSignature</c>).</summary>
/// <param name="Algorithm">How it was made.</param>
/// <param name="Signature">64 bytes.</param>
public sealed record BundleSignature(SignatureAlgorithm Algorithm, byte[] Signature)
{
    /// <summary>Whether <paramref name="key"/> made this signature of <paramref name="message"/> (the algorithms must match).</summary>
    public bool IsBy(SigningKeyDescription key, ReadOnlySpan<byte> message) =>
        key is not null && key.Algorithm == Algorithm && key.Verifies(message, Signature);
}

/// <summary>
/// One witness's word on a bundle: the statement it signed and logged, its signature, where the
/// statement sits in its log (leaf index, inclusion proof, the signed checkpoint the proof leads
/// to), and the fleet's countersignature of the witness's signature bytes.
/// </summary>
/// <param name="WitnessKeyName">The witness's note key name, which is also its log's origin.</param>
/// <param name="WitnessKeyId">The witness key's C2SP key ID.</param>
/// <param name="LeafIndex">The statement's position in the witness's log.</param>
/// <param name="Statement">The encoded <see cref="WitnessStatement"/>: the bytes the witness signed and the leaf data.</param>
/// <param name="WitnessSignature">The witness's signature of <paramref name="Statement"/>.</param>
/// <param name="InclusionProof">RFC 9162 inclusion proof of the leaf in the checkpoint's tree.</param>
/// <param name="Checkpoint">The witness's signed checkpoint note (C2SP tlog-checkpoint in a signed note).</param>
/// <param name="FleetCountersignature">The fleet signing key's signature of <see cref="Bundles.FleetCountersignature.SignedMessage"/>; null when missing.</param>
public sealed record WitnessAttestation(
    string WitnessKeyName,
    uint WitnessKeyId,
    ulong LeafIndex,
    byte[] Statement,
    BundleSignature WitnessSignature,
    IReadOnlyList<byte[]> InclusionProof,
    string Checkpoint,
    BundleSignature? FleetCountersignature);

/// <summary>
/// A bundle as clients receive it: the canonical bundle bytes, the operator's signature of its
/// witness submission, and one attestation per witness that logged it.
/// </summary>
/// <param name="Bundle">The <see cref="BundleCodec"/> encoding.</param>
/// <param name="OperatorSignature">The operator's signature of <see cref="WitnessSubmission.SignedMessage"/> for this bundle; null when missing.</param>
/// <param name="Attestations">What each witness said.</param>
public sealed record SignedValidationBundle(byte[] Bundle, BundleSignature? OperatorSignature, IReadOnlyList<WitnessAttestation> Attestations);

/// <summary>
/// What the fleet signs to countersign a witness's signature: a domain prefix and the witness
/// signature's bytes. Signing the witness's signature (not the bundle) shows that the fleet's
/// token key saw the bundle <em>as witnessed</em>, as Meta's HSM fleet countersigns Cloudflare's
/// signature.
/// </summary>
/// <remarks>
/// Encoding: <c>"HsmVault fleet countersignature v1" || 0x00</c> (35 bytes), then the 64 witness
/// signature bytes.
/// </remarks>
public static class FleetCountersignature
{
    /// <summary>Domain-separation prefix.</summary>
    public static ReadOnlySpan<byte> Prefix => "HsmVault fleet countersignature v1\0"u8;

    /// <summary>The bytes the fleet signing key signs to countersign <paramref name="witnessSignature"/>.</summary>
    public static byte[] SignedMessage(ReadOnlySpan<byte> witnessSignature) => [.. Prefix, .. witnessSignature];
}
