using HsmVault.Hsm;

namespace HsmVault.Cli.Commands;

/// <summary>
/// <c>hsmvault token check</c>: whether a token has what a vault member needs, before anything
/// is provisioned in it (an operator can run it against an HSM before buying it).
/// </summary>
internal static class TokenCheckCommand
{
    /// <summary>Exit code when the token cannot serve as a vault member.</summary>
    public const int CannotServe = 3;

    /// <summary>
    /// <c>hsmvault token check --config DAEMON.json</c>, or <c>--module PATH --label L</c>
    /// (<c>--serial S</c>, <c>--module-init-args STRING</c>). Needs no PIN: the mechanism list is public.
    /// </summary>
    public static int Run(Arguments args)
    {
        var config = args.Optional("config");
        TokenOptions options;
        if (config is not null)
        {
            options = TokenCommands.ReadTokenOptions(config);
        }
        else
        {
            options = new TokenOptions
            {
                ModulePath = args.Optional("module") ?? new TokenOptions().ModulePath,
                TokenLabel = args.Optional("label"),
                TokenSerial = args.Optional("serial"),
                ModuleInitArgs = args.Optional("module-init-args"),
            };
        }

        args.RejectUnknown();
        var report = TokenRequirements.Check(options);
        var token = report.Token!;
        Console.WriteLine($"token '{token.Label}' (serial '{token.SerialNumber}', {token.ManufacturerId} {token.Model}) in slot 0x{token.SlotId:x} of {options.ModulePath}");
        foreach (var line in report.Lines())
        {
            Console.WriteLine(line);
        }

        return report.CanServeAsMember ? 0 : CannotServe;
    }
}
