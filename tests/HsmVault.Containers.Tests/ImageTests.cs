using System.Security.Cryptography;
using DotNet.Testcontainers.Builders;
using DotNet.Testcontainers.Containers;
using DotNet.Testcontainers.Volumes;
using HsmVault.Containers.Tests.Support;

namespace HsmVault.Containers.Tests;

/// <summary>The image on its own: dev mode, its user, its read-only root, its health check.</summary>
[Collection(ContainersGroup.Name)]
public sealed class ImageTests(DockerEngine engine)
{
    [Fact]
    public async Task DevMode_ProvisionsItself_AsNonRootOnAReadOnlyRoot_AndDockerSeesItHealthy()
    {
        var id = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4));
        var label = $"hsmvault.image-test={id}";
        var volumes = new List<IVolume>();
        IContainer? container = null;
        try
        {
            var builder = new ContainerBuilder(engine.Image)
                .WithName($"hsmvault-ct-{id}-dev")
                .WithLabel("hsmvault.tests", "containers").WithLabel("hsmvault.image-test", id)
                .WithEnvironment("HSMVAULT_DEV_MODE", "1")
                .WithTmpfsMount("/tmp")
                .WithCreateParameterModifier(p => (p.HostConfig ?? throw new InvalidOperationException("no host configuration")).ReadonlyRootfs = true)
                // Docker's own health status, from the image's HEALTHCHECK (the gRPC health probe).
                .WithWaitStrategy(Wait.ForUnixContainer().UntilContainerIsHealthy(failingStreak: 100));
            foreach (var (name, path) in new[] { ("token", "/var/lib/hsmvault/token"), ("data", "/var/lib/hsmvault/data"), ("config", "/etc/hsmvault") })
            {
                var volume = new VolumeBuilder().WithName($"hsmvault-ct-{id}-{name}")
                    .WithLabel("hsmvault.tests", "containers").WithLabel("hsmvault.image-test", id).Build();
                await volume.CreateAsync();
                volumes.Add(volume);
                builder = builder.WithVolumeMount(volume, path);
            }

            container = builder.Build();
            await container.StartAsync();
            Assert.Equal(TestcontainersHealthStatus.Healthy, container.Health);

            var user = await container.ExecAsync(["id", "-u"]);
            Assert.Equal("10001", user.Stdout.Trim());
            var write = await container.ExecAsync(["touch", "/opt/hsmvault/written"]);
            Assert.NotEqual(0, write.ExitCode);

            // The CLI in the image, against the member, with the tenant key dev mode made.
            // Through the shell: `docker cp` cannot write into a tmpfs mount.
            var password = await container.ExecAsync(["sh", "-c", "umask 077 && echo 'correct horse battery staple' > /tmp/password"]);
            Assert.Equal(0, password.ExitCode);
            string[] identity = ["--tenant-key", "/etc/hsmvault/dev-tenant.key.pem", "--password-file", "/tmp/password", "--unverified-fleet"];
            var register = await container.ExecAsync(["hsmvault", "register", "--user", "alice", "--guess-limit", "3", .. identity]);
            Assert.True(register.ExitCode == 0, register.Stderr);
            var recover = await container.ExecAsync(["hsmvault", "recover", "--user", "alice", .. identity]);
            Assert.True(recover.ExitCode == 0, recover.Stderr);
            Assert.Contains("backup key:", recover.Stdout, StringComparison.Ordinal);
        }
        finally
        {
            if (container is not null)
            {
                await container.DisposeAsync();
            }

            foreach (var volume in volumes)
            {
                await volume.DisposeAsync();
            }

            await DockerCli.RemoveLabelledAsync(label);
        }
    }
}
