spoke_test(test_golden ${CMAKE_CURRENT_LIST_DIR}/test_golden.c LABELS golden TIMEOUT 300)
spoke_test(test_kquant ${CMAKE_CURRENT_LIST_DIR}/test_kquant.c LABELS golden TIMEOUT 300)
spoke_script_test(test_cli python3 ${CMAKE_CURRENT_LIST_DIR}/test_cli.py LABELS golden TIMEOUT 300)
# the family traces are slow under ASan (minutes); test_arch_load covers those code paths there
spoke_test(test_arch ${CMAKE_CURRENT_LIST_DIR}/test_arch.c LABELS golden no-asan TIMEOUT 300)
spoke_test(test_swa ${CMAKE_CURRENT_LIST_DIR}/test_swa.c LABELS golden TIMEOUT 300)
spoke_script_test(test_arch_cli python3 ${CMAKE_CURRENT_LIST_DIR}/test_arch_cli.py LABELS golden no-asan TIMEOUT 300)
