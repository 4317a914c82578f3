#!/bin/sh
# Runs a command (a package download in a Dockerfile step) trusting the base image's CAs plus the build secret
# `extra_ca` when one is given (a TLS-intercepting proxy's CA): the combined bundle lives in /tmp only while the
# command runs, so no layer holds it. deploy/docker/Dockerfile bind-mounts this file into the steps that download;
# it is never copied into an image.
set -u
if [ -s /run/secrets/extra_ca ]; then
  cat /etc/ssl/certs/ca-certificates.crt /run/secrets/extra_ca > /tmp/ca-bundle.pem
  export SSL_CERT_FILE=/tmp/ca-bundle.pem
fi
"$@"; status=$?
rm -f /tmp/ca-bundle.pem
exit $status
