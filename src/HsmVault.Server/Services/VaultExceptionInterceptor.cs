using Grpc.Core;
using Grpc.Core.Interceptors;
using HsmVault.Protocol.V1;
using HsmVault.Vault;

namespace HsmVault.Server.Services;

/// <summary>
/// Turns a refused vault operation into the gRPC status a client can act on, with the
/// refusal's message and, where there is one, its <see cref="RefusalReason"/> in the
/// <see cref="RefusalTrailer"/>; a call its caller abandoned is answered as cancelled or past its deadline.
/// </summary>
public sealed class VaultExceptionInterceptor : Interceptor
{
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
            throw new RpcException(new Status(ToStatusCode(e.Error), e.Message), RefusalTrailer.For(e.Reason));
        }
        catch (OperationCanceledException e) when (context.CancellationToken.IsCancellationRequested)
        {
            // The caller went away or its deadline passed (e.g. while this member was frozen): that is the caller's
            // outcome, not a fault of this member, so it is answered as a status rather than logged as an error.
            // A write cancelled this way may still commit; its answer stays fetchable (see VaultService).
            var passed = context.Deadline <= DateTime.UtcNow;
            throw new RpcException(new Status(
                passed ? StatusCode.DeadlineExceeded : StatusCode.Cancelled,
                passed ? "the call's deadline passed before this member finished it; retry with a longer deadline" : "the call was cancelled before this member finished it",
                e));
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
