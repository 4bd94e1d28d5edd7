namespace HsmVault.Server.Bundles;

/// <summary>
/// The validation bundle a member serves (<c>HsmVault:Bundle</c>). Without <see cref="File"/> the
/// member serves none: clients that verify fleets (the CLI, the client library with a trust policy)
/// then refuse it, and GetFleetInfo answers from configuration, unauthenticated (development only).
/// </summary>
public sealed class BundleOptions
{
    /// <summary>The configuration section.</summary>
    public const string SectionName = "HsmVault:Bundle";

    /// <summary>
    /// The SignedBundle file <c>hsmvault fleet bundle --out</c> wrote (binary protobuf). Checked at
    /// start-up against this member's token and configuration; re-read when it changes (see
    /// <see cref="ReloadInterval"/>), and a new file is served only if it passes the same checks
    /// and its epoch is not lower.
    /// </summary>
    public string? File { get; set; }

    /// <summary>
    /// This member's client endpoint as the bundle lists it (read by <c>hsmvault fleet bundle</c>;
    /// Kestrel's <c>Grpc</c> endpoint when unset).
    /// </summary>
    public string? Endpoint { get; set; }

    /// <summary>
    /// Witnesses' API addresses (e.g. <c>http://witness-1:7301</c>), asked for the consistency
    /// proofs GetValidationBundle returns. A witness missing here leaves a client that saw an
    /// older checkpoint of it to fetch the proof itself, or to refuse.
    /// </summary>
    public IList<string> Witnesses { get; } = [];

    /// <summary>How often the member looks for a new bundle file. 30 seconds by default; 1 second to 1 day.</summary>
    public TimeSpan ReloadInterval { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// The successor fleet's SignedBundle file (`hsmvault fleet bundle --out`): the fleet that takes this
    /// one's users over. Served beside this fleet's bundle (GetValidationBundleResponse.successor), so that
    /// clients register there and move their users there at their next recovery; named in the refusals of
    /// registrations once this fleet is retired. It may not exist yet: it is looked for at every
    /// <see cref="ReloadInterval"/>, so a running fleet starts naming its successor without a restart.
    /// </summary>
    public string? SuccessorFile { get; set; }

    /// <summary>
    /// The SignedBundle files of the fleets this one takes users over from: a move receipt signed by one of
    /// their fleet signing keys activates a user's pending record here. Read at start.
    /// </summary>
    public IList<string> Predecessors { get; } = [];
}
