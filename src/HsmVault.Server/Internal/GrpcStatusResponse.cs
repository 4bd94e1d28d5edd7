using System.Globalization;
using System.Text;
using Grpc.Core;
using Microsoft.AspNetCore.Http;

namespace HsmVault.Server.Internal;

/// <summary>
/// Answers a gRPC call from ASP.NET Core middleware, before it reaches a gRPC service: a
/// "trailers-only" response (HTTP 200, <c>application/grpc</c>, <c>grpc-status</c> and
/// <c>grpc-message</c> in the headers, no body), which every gRPC client reads as the call's
/// status. Without it, a refusal from middleware is a bare HTTP status that clients report as
/// "Received HTTP status code 401".
/// </summary>
internal static class GrpcStatusResponse
{
    /// <summary>Writes <paramref name="code"/> and <paramref name="message"/> as the call's status.</summary>
    public static Task WriteAsync(HttpResponse response, StatusCode code, string message, IEnumerable<KeyValuePair<string, string>>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(response);
        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = "application/grpc";
        response.Headers["grpc-status"] = ((int)code).ToString(CultureInfo.InvariantCulture);
        response.Headers["grpc-message"] = PercentEncode(message);
        foreach (var (key, value) in metadata ?? [])
        {
            response.Headers[key] = value;
        }

        return response.CompleteAsync();
    }

    /// <summary>
    /// The gRPC spec's encoding of grpc-message: printable ASCII other than '%' as is, every
    /// other byte of the UTF-8 form as %XX.
    /// </summary>
    internal static string PercentEncode(string message)
    {
        var encoded = new StringBuilder(message.Length);
        foreach (var b in Encoding.UTF8.GetBytes(message))
        {
            if (b is >= 0x20 and <= 0x7E and not (byte)'%')
            {
                encoded.Append((char)b);
            }
            else
            {
                encoded.Append('%').Append(b.ToString("X2", CultureInfo.InvariantCulture));
            }
        }

        return encoded.ToString();
    }
}
