// The Result type is part of the public API; internal code includes it here.
#pragma once
#include "moat/result.h"
