using Grpc.Core;
using Grpc.Core.Interceptors;
using HsmVault.Vault;

namespace HsmVault.Server.Services;

/// <summary>
/// Turns a refused vault operation into the gRPC status a client can act on, with the
/// refusal's message and, where there is one, a machine-readable <c>hsmvault-reason</c> trailer.
/// </summary>
public sealed class VaultExceptionInterceptor : Interceptor
{
    /// <summary>Trailer carrying <see cref="VaultException.Reason"/>.</summary>
    public const string ReasonTrailer = "hsmvault-reason";

    /// <inheritdoc/>
    public override async Task<TResponse> UnaryServerHandler<TRequest, TResponse>(
        TRequest request,
        ServerCallContext context,
        UnaryServerMethod<TRequest, TResponse> continuation)
    {
        ArgumentNullException.ThrowIfNull(continuation);
        try
        {
            return await continuation(request, context);
        }
        catch (VaultException e)
        {
            var trailers = new Metadata();
            if (e.Reason is not null)
            {
                trailers.Add(ReasonTrailer, e.Reason);
            }

            throw new RpcException(new Status(ToStatusCode(e.Error), e.Message), trailers);
        }
    }

    /// <summary>The gRPC status for each kind of refusal.</summary>
    public static StatusCode ToStatusCode(VaultError error) => error switch
    {
        VaultError.InvalidArgument => StatusCode.InvalidArgument,
        VaultError.FailedPrecondition => StatusCode.FailedPrecondition,
        VaultError.NotFound => StatusCode.NotFound,
        VaultError.ResourceExhausted => StatusCode.ResourceExhausted,
        VaultError.Unavailable => StatusCode.Unavailable,
        VaultError.DataLoss => StatusCode.DataLoss,
        VaultError.Aborted => StatusCode.Aborted,
        VaultError.Unauthenticated => StatusCode.Unauthenticated,
        _ => StatusCode.Internal,
    };
}
