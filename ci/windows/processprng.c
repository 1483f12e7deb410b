/*
 * bcryptprimitives.dll for Wine 8: one export, ProcessPrng.
 *
 * Why this exists: Rust's standard library for Windows (1.78 and later) imports ProcessPrng
 * from bcryptprimitives.dll to seed its random state (HashMap keys). Wine 8.0, which Debian 12
 * ships and which runs our Windows test suite, has no bcryptprimitives.dll, so every Rust
 * executable fails to start (status c0000135, "DLL not found") before main. ci/windows/test.sh
 * builds this DLL under the target directory and installs it into the Wine prefix's
 * C:\windows\system32 (drive_c/windows/system32), where every executable Wine starts finds it,
 * doc tests built in temporary directories included. It is test tooling only: it is never part
 * of selectloop, and a real Windows (8 and later) has its own.
 *
 * ProcessPrng is implemented with SystemFunction036 (RtlGenRandom) from advapi32, which Wine
 * has: both fill a buffer with cryptographically random bytes.
 *
 * Build (ci/windows/test.sh does, then installs it):
 *   x86_64-w64-mingw32-gcc -shared -O2 -Wall -Werror -o bcryptprimitives.dll processprng.c -ladvapi32
 */
#include <windows.h>

/* RtlGenRandom's real name; declared here so no ntsecapi.h quirks are involved. */
__declspec(dllimport) BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

/* BOOL WINAPI ProcessPrng(PBYTE pbData, SIZE_T cbData): Windows documents that it always
 * succeeds; here it returns FALSE only if RtlGenRandom fails. RtlGenRandom takes a 32-bit
 * length, so larger requests are filled in chunks. */
__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len > 0) {
        ULONG chunk = len > 0x40000000 ? 0x40000000 : (ULONG)len;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}
