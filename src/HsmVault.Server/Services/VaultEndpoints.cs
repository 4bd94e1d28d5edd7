using Google.Protobuf;
using Grpc.AspNetCore.Server.Model;
using Grpc.Core;
using Microsoft.AspNetCore.Routing;

namespace HsmVault.Server.Services;

/// <summary>
/// The type the vault API is mapped under. It exists so that <see cref="VaultMethodProvider"/>,
/// not grpc-dotnet's reflection binder (which binds any <c>VaultBase</c> subclass), declares the
/// methods: the binder would take the generated request marshallers unchanged.
/// </summary>
internal sealed class VaultEndpoints(VaultGrpcService service)
{
    /// <summary>The implementation every call goes to.</summary>
    public VaultGrpcService Service { get; } = service;
}

/// <summary>
/// Declares the methods of <c>vault.proto</c> on <see cref="VaultEndpoints"/>, each going to
/// <see cref="VaultGrpcService"/>'s implementation with its attributes (<c>[Authorize]</c>,
/// <c>[AllowAnonymous]</c>), and with a request parser that answers INVALID_ARGUMENT.
/// </summary>
/// <remarks>
/// grpc-dotnet parses the request before any interceptor or handler runs; a parse failure there
/// becomes UNKNOWN "Exception was thrown by handler." and an error log with a stack trace, on
/// every garbage request. An <see cref="RpcException"/> thrown by the parser is reported as its
/// own status instead, with no error log (grpc-dotnet logs it at Information). So the seam is the
/// marshaller.
/// </remarks>
internal sealed class VaultMethodProvider : IServiceMethodProvider<VaultEndpoints>
{
    public void OnServiceMethodDiscovery(ServiceMethodProviderContext<VaultEndpoints> context) =>
        // The generated binder lists every method with its descriptor; without an implementation
        // instance it passes null handlers, and the calls are bound below by name.
        Generated.Vault.BindService(new Binder(context), serviceImpl: null!);

    /// <summary>The request marshaller of <paramref name="method"/>, with parse failures as INVALID_ARGUMENT.</summary>
    internal static Method<TRequest, TResponse> WithCheckedParsing<TRequest, TResponse>(Method<TRequest, TResponse> method)
        where TRequest : class
        where TResponse : class
    {
        var parse = method.RequestMarshaller.ContextualDeserializer;
        var marshaller = new Marshaller<TRequest>(method.RequestMarshaller.ContextualSerializer, context =>
        {
            try
            {
                return parse(context);
            }
            catch (InvalidProtocolBufferException e)
            {
                throw new RpcException(new Status(StatusCode.InvalidArgument,
                    $"the request is not a valid {typeof(TRequest).Name} protobuf message: {e.Message}"));
            }
        });
        return new Method<TRequest, TResponse>(method.Type, method.ServiceName, method.Name, marshaller, method.ResponseMarshaller);
    }

    private sealed class Binder(ServiceMethodProviderContext<VaultEndpoints> context) : ServiceBinderBase
    {
        // The vault API is unary only; the base class refuses any other kind of method.
        public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, UnaryServerMethod<TRequest, TResponse>? handler)
        {
            var implementation = typeof(VaultGrpcService).GetMethod(method.Name, [typeof(TRequest), typeof(ServerCallContext)])
                ?? throw new InvalidOperationException($"{nameof(VaultGrpcService)} does not implement {method.FullName}");
            var call = implementation.CreateDelegate<Func<VaultGrpcService, TRequest, ServerCallContext, Task<TResponse>>>();
            // As grpc-dotnet's own binder: the type's attributes first, the method's last (they win).
            List<object> metadata =
            [
                .. typeof(VaultGrpcService).GetCustomAttributes(inherit: true),
                .. implementation.GetCustomAttributes(inherit: true),
                new HttpMethodMetadata(["POST"], acceptCorsPreflight: true),
            ];
            context.AddUnaryMethod(WithCheckedParsing(method), metadata, (endpoints, request, callContext) => call(endpoints.Service, request, callContext));
        }
    }
}
