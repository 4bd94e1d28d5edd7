#!/usr/bin/env bash
# `make image`: builds the hsmvaultd image.
#
#   docker/build-image.sh IMAGE [BASE]
#
# 1. a Docker engine (docker/dockerd.sh); 2. the base image, made once without a registry
# (docker/base-image.sh) unless BASE names another one, e.g. debian:bookworm-slim; 3. the
# daemon, the CLI and the witness daemon published self-contained for linux-x64 (the image
# needs no .NET);
# 4. `docker build` of docker/Dockerfile from a staged context that holds only what the
# image gets (the repository with its bin/ and obj/ folders would be a large context).
set -euo pipefail

image=${1:?usage: $0 IMAGE [BASE]}
base=${2:-hsmvault-base:bookworm}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
stage=$root/.image

"$root/docker/dockerd.sh"
if [[ $base == hsmvault-base:* ]]; then
    "$root/docker/base-image.sh" "$base"
fi

for project in Daemon Cli WitnessDaemon; do
    out=$stage/publish/$(tr '[:upper:]' '[:lower:]' <<<"$project")
    rm -rf "$out"
    dotnet publish "$root/src/HsmVault.$project" -c Release -r linux-x64 --self-contained \
        -o "$out" -v quiet -nologo
done

context=$stage/context
rm -rf "$context"
mkdir -p "$context/softhsm"
cp -a "$stage/publish/daemon" "$context/daemon"
cp -a "$stage/publish/cli" "$context/cli"
cp -a "$stage/publish/witnessdaemon" "$context/witness"
cp -a "$root/softhsm/make-tokens.sh" "$root/softhsm/softhsm2.conf.template" "$context/softhsm/"
cp -a "$root/docker/scripts" "$context/bin"
cp -a "$root/docker/packages.txt" "$context/"
docker build --quiet --build-arg BASE="$base" -t "$image" -f "$root/docker/Dockerfile" "$context" >/dev/null
echo "image $image built ($(docker image inspect -f '{{.Size}}' "$image" | awk '{ printf "%d MB", $1 / 1e6 }'))"
