namespace HsmVault.Transparency.Bundles;

/// <summary>Why a client refused a validation bundle. The names appear in CLI output and logs: never rename them.</summary>
public enum BundleRefusal
{
    /// <summary>The bundle or one of its parts does not decode.</summary>
    Malformed = 1,

    /// <summary>No operator signature, or one no pinned operator key verifies.</summary>
    OperatorSignatureInvalid,

    /// <summary>An attestation is by a witness whose key is not pinned.</summary>
    UnknownWitness,

    /// <summary>A pinned witness's signature does not verify, or its statement is not about this bundle.</summary>
    WitnessSignatureInvalid,

    /// <summary>A witness's signature carries no fleet countersignature.</summary>
    MissingCountersignature,

    /// <summary>The fleet countersignature does not verify under the bundle's fleet signing key.</summary>
    CountersignatureInvalid,

    /// <summary>A checkpoint does not verify under its witness's key.</summary>
    CheckpointInvalid,

    /// <summary>The inclusion proof does not lead from the statement to the checkpoint's root.</summary>
    InclusionProofInvalid,

    /// <summary>A witness's checkpoint is not consistent with one this client saw before: the log forked or was rewritten.</summary>
    CheckpointInconsistent,

    /// <summary>A checkpoint differs in size from the last one seen and no consistency proof came with it.</summary>
    ConsistencyUnproven,

    /// <summary>Fewer pinned witnesses attest the bundle than the policy requires.</summary>
    TooFewWitnesses,

    /// <summary>The bundle's epoch is lower than the highest this client has seen for its namespace.</summary>
    EpochRolledBack,

    /// <summary>The bundle has the epoch of a bundle seen before, but another digest.</summary>
    EpochEquivocation,

    /// <summary>The bundle is past its not-after.</summary>
    Expired,

    /// <summary>The server's OPAQUE key (in KE2, or the one the fleet serves) is not the bundle's.</summary>
    OpaqueKeyMismatch,

    /// <summary>The member serves no validation bundle, so nothing says it is a fleet the pinned keys vouch for.</summary>
    NotServed,

    /// <summary>A RegistrationResponse carries no signature, or one the bundle's fleet signing key does not verify.</summary>
    RegistrationNotVouched,

    /// <summary>The successor a fleet names is not the next fleet of its namespace (another namespace, not a higher epoch, or the same fleet).</summary>
    SuccessorInvalid,
}

/// <summary>A validation bundle was refused; <see cref="Reason"/> says why, the message names what failed.</summary>
public sealed class BundleRefusedException : Exception
{
    /// <summary>Creates the refusal.</summary>
    public BundleRefusedException(BundleRefusal reason, string message, Exception? innerException = null)
        : base($"validation bundle refused ({reason}): {message}", innerException)
    {
        Reason = reason;
    }

    /// <summary>Creates a refusal without a reason; prefer the overload that names one.</summary>
    public BundleRefusedException()
    {
    }

    /// <summary>Creates a refusal without a reason; prefer the overload that names one.</summary>
    public BundleRefusedException(string message)
        : base(message)
    {
    }

    /// <summary>Creates a refusal without a reason; prefer the overload that names one.</summary>
    public BundleRefusedException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>Why the bundle was refused.</summary>
    public BundleRefusal Reason { get; }
}
