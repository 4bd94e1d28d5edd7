using Grpc.Core;
using Google.Protobuf.Reflection;

namespace HsmVault.Protocol.V1;

/// <summary>
/// How a refusal's reason travels (vault.proto, <see cref="RefusalReason"/>): the trailer
/// <see cref="Name"/>, holding the value's proto name without its <c>REFUSAL_REASON_</c> prefix.
/// Server and clients both use this, so the spelling lives here only.
/// </summary>
public static class RefusalTrailer
{
    /// <summary>The trailer that names why a request was refused.</summary>
    public const string Name = "hsmvault-reason";

    private const string Prefix = "REFUSAL_REASON_";

    private static readonly EnumDescriptor Reasons = VaultReflection.Descriptor.EnumTypes.Single(e => e.ClrType == typeof(RefusalReason));

    /// <summary>The trailer's value for <paramref name="reason"/>, e.g. <c>RECORD_DESTROYED</c>.</summary>
    public static string ValueOf(RefusalReason reason) =>
        Reasons.FindValueByNumber((int)reason)?.Name[Prefix.Length..]
        ?? throw new ArgumentOutOfRangeException(nameof(reason), reason, "not a RefusalReason of vault.proto");

    /// <summary>Trailers carrying <paramref name="reason"/>; none for <see cref="RefusalReason.Unspecified"/>.</summary>
    public static Metadata For(RefusalReason reason)
    {
        var trailers = new Metadata();
        if (reason != RefusalReason.Unspecified)
        {
            trailers.Add(Name, ValueOf(reason));
        }

        return trailers;
    }

    /// <summary>The reason a refusal carries; <see cref="RefusalReason.Unspecified"/> when it names none this client knows.</summary>
    public static RefusalReason Of(RpcException exception)
    {
        ArgumentNullException.ThrowIfNull(exception);
        var value = exception.Trailers.GetValue(Name);
        var match = value is null ? null : Reasons.FindValueByName(Prefix + value);
        return match is null ? RefusalReason.Unspecified : (RefusalReason)match.Number;
    }
}
