using Microsoft.Extensions.Options;

namespace HsmVault.Server.Bundles;

/// <summary>Validates <see cref="BundleOptions"/> at start-up; each failure names the setting.</summary>
internal sealed class BundleOptionsValidator : IValidateOptions<BundleOptions>
{
    public ValidateOptionsResult Validate(string? name, BundleOptions options)
    {
        var failures = new List<string>();
        if (options.ReloadInterval < TimeSpan.FromSeconds(1) || options.ReloadInterval > TimeSpan.FromDays(1))
        {
            failures.Add($"HsmVault:Bundle:ReloadInterval must be 00:00:01 to 1.00:00:00; it is {options.ReloadInterval}");
        }

        foreach (var witness in options.Witnesses)
        {
            if (!Uri.TryCreate(witness, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https"))
            {
                failures.Add($"HsmVault:Bundle:Witnesses: '{witness}' is not an http(s) address of a witness");
            }
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
