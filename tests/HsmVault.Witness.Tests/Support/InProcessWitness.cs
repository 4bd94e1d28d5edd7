using Grpc.Net.Client;
using HsmVault.Testing.Daemons;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using WitnessClient = HsmVault.Protocol.V1.Witness.WitnessClient;

namespace HsmVault.Witness.Tests.Support;

/// <summary>The witness host (<see cref="WitnessServer"/>) in this process, on real Kestrel at 127.0.0.1 port 0, with its logs captured.</summary>
public sealed class InProcessWitness : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly GrpcChannel _channel;

    private InProcessWitness(WebApplication app, Uri address, LogCapture logs)
    {
        _app = app;
        Address = address;
        Logs = logs;
        _channel = GrpcChannel.ForAddress(address);
        Client = new WitnessClient(_channel);
    }

    /// <summary>Where it listens.</summary>
    public Uri Address { get; }

    /// <summary>Every event it logged.</summary>
    public LogCapture Logs { get; }

    /// <summary>A client of its API.</summary>
    public WitnessClient Client { get; }

    /// <summary>The log behind the API.</summary>
    public WitnessLog Log => _app.Services.GetRequiredService<WitnessLog>();

    /// <summary>Starts the witness with <paramref name="settings"/>.</summary>
    public static async Task<InProcessWitness> StartAsync(IReadOnlyDictionary<string, string?> settings, LogCapture? logs = null)
    {
        logs ??= new LogCapture();
        var builder = WitnessServer.CreateBuilder([], configuration => configuration.AddInMemoryCollection(settings));
        builder.Logging.ClearProviders();
        builder.Logging.AddProvider(logs);
        var app = WitnessServer.Build(builder);
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single();
        return new InProcessWitness(app, new Uri(address), logs);
    }

    public async ValueTask DisposeAsync()
    {
        _channel.Dispose();
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
