spoke_fuzzer(fuzz_hubjson ${CMAKE_CURRENT_LIST_DIR}/fuzz_hubjson.c)
