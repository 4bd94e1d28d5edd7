using Grpc.Core;
using Grpc.Core.Interceptors;

namespace HsmVault.Containers.Tests.Support;

/// <summary>
/// Runs a step (a fault) between a recovery's two calls: after StartRecovery has answered,
/// which the fleet does only once the guess is committed by a majority, and before
/// FinishRecovery leaves the client. The client library stays the real one.
/// </summary>
public sealed class BeforeFinishRecovery(Func<Task> step) : Interceptor
{
    /// <inheritdoc/>
    public override AsyncUnaryCall<TResponse> AsyncUnaryCall<TRequest, TResponse>(
        TRequest request, ClientInterceptorContext<TRequest, TResponse> context, AsyncUnaryCallContinuation<TRequest, TResponse> continuation)
    {
        ArgumentNullException.ThrowIfNull(continuation);
        if (context.Method.Name != "FinishRecovery")
        {
            return continuation(request, context);
        }

        var response = SendAfterStepAsync();
        return new AsyncUnaryCall<TResponse>(response, Task.FromResult(new Metadata()), () => Status.DefaultSuccess, () => [], () => { });

        async Task<TResponse> SendAfterStepAsync()
        {
            await step();
            using var call = continuation(request, context);
            return await call.ResponseAsync;
        }
    }
}
