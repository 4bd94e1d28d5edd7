using HsmVault.Crypto.Signatures;
using HsmVault.Transparency;

namespace HsmVault.Witness;

/// <summary>A bundle an operator submits for logging.</summary>
/// <param name="Namespace">Whose history it belongs to.</param>
/// <param name="Epoch">Its position in that history.</param>
/// <param name="Bundle">The bundle bytes; the witness logs their SHA-256.</param>
/// <param name="OperatorSignature">The operator's signature over <see cref="WitnessSubmission.SignedMessage"/>.</param>
/// <param name="OperatorAlgorithm">Algorithm of <paramref name="OperatorSignature"/>.</param>
public sealed record BundleSubmission(string Namespace, ulong Epoch, byte[] Bundle, SignatureAlgorithm OperatorAlgorithm, byte[] OperatorSignature);

/// <summary>One logged bundle.</summary>
/// <param name="LeafIndex">Its position in the log.</param>
/// <param name="StatementBytes">The encoded statement: the signed bytes and the leaf data.</param>
/// <param name="Statement">The statement, decoded.</param>
/// <param name="SignatureAlgorithm">Algorithm of <paramref name="Signature"/>.</param>
/// <param name="Signature">The witness's signature of <paramref name="StatementBytes"/>.</param>
/// <param name="Bundle">The bundle bytes.</param>
public sealed record LoggedEntry(ulong LeafIndex, byte[] StatementBytes, WitnessStatement Statement, SignatureAlgorithm SignatureAlgorithm, byte[] Signature, byte[] Bundle);

/// <summary>A logged bundle with what proves it is in the log.</summary>
/// <param name="Entry">The entry.</param>
/// <param name="CheckpointNote">The signed checkpoint the proof leads to.</param>
/// <param name="TreeSize">The checkpoint's tree size.</param>
/// <param name="InclusionProof">RFC 9162 inclusion proof of the entry's leaf in that tree.</param>
/// <param name="AlreadyLogged">For a submission: it had been logged before.</param>
public sealed record LoggedBundleProof(LoggedEntry Entry, string CheckpointNote, ulong TreeSize, IReadOnlyList<byte[]> InclusionProof, bool AlreadyLogged);

/// <summary>A refused second digest for a logged epoch.</summary>
/// <param name="Id">Its position among the recorded attempts.</param>
/// <param name="Namespace">The namespace.</param>
/// <param name="Epoch">The epoch.</param>
/// <param name="LoggedDigest">The digest in the log.</param>
/// <param name="AttemptedDigest">The refused digest.</param>
/// <param name="ObservedAt">When the witness refused it.</param>
/// <param name="OperatorAlgorithm">Algorithm of <paramref name="OperatorSignature"/>.</param>
/// <param name="OperatorSignature">The operator's signature of the refused submission.</param>
public sealed record EquivocationRecord(
    long Id, string Namespace, ulong Epoch, byte[] LoggedDigest, byte[] AttemptedDigest, DateTimeOffset ObservedAt,
    SignatureAlgorithm OperatorAlgorithm, byte[] OperatorSignature);
